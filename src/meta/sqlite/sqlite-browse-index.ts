import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import { parseCursor, prefixRanges, probeRows, type BrowseIndex, type RepositoryQuery, type RepositorySummary } from '../browse-index.ts';
import { SqliteStatements, type Row } from './database.ts';

/** Shortest search the trigram index can answer; shorter ones scan names. */
const trigram = 3;

/** How a substring search is answered: scanning names in order, or through the trigram index. */
type SearchBy = 'scan' | 'trigrams';

/** The browse index over the SqliteMetaStore's database (tables and triggers: browse-migration.ts). */
export class SqliteBrowseIndex implements BrowseIndex {
  readonly #q: SqliteStatements;

  constructor(db: DatabaseSync) {
    this.#q = new SqliteStatements(db);
  }

  async repositories(query: RepositoryQuery): Promise<RepositorySummary[]> {
    const search = query.search ?? '';
    if (search.length < trigram || query.match === 'prefix') return this.#page(query, 'scan');
    // A common text fills the page within the first rows in order; a rare
    // one is found through the trigram index, whose matches are few to sort.
    const probed = this.#page(query, 'scan', probeRows);
    return probed.length === query.limit ? probed : this.#page(query, 'trigrams');
  }

  #page(query: RepositoryQuery, searchBy: SearchBy, scanAtMost?: number): RepositorySummary[] {
    const where = ['s.manifests > 0'];
    const params: SQLInputValue[] = [];
    const search = query.search ?? '';
    let filter: string | undefined;
    if (search !== '' && query.match === 'prefix') {
      where.push('r.name >= ? AND r.name < ?');
      params.push(search, `${search}~`);
    } else if (search !== '' && searchBy === 'trigrams') {
      where.push('r.id IN (SELECT rowid FROM repository_names WHERE repository_names MATCH ?)');
      params.push(`"${search.replaceAll('"', '""')}"`);
    } else if (search !== '') {
      filter = search;
    }
    const ranges = prefixRanges(query.within);
    if (ranges !== undefined) {
      where.push(ranges.length === 0 ? '0' : `(${ranges.map(() => '(r.name >= ? AND r.name < ?)').join(' OR ')})`);
      params.push(...ranges.flat());
    }
    let order: string;
    if (query.sort === 'name') {
      if (query.after !== undefined) {
        where.push('r.name > ?');
        params.push(query.after);
      }
      order = 'r.name';
    } else {
      const column = query.sort === 'size' ? 's.bytes' : 's.pushed_at';
      const cursor = parseCursor(query.after);
      if (cursor !== undefined) {
        where.push(`(${column}, s.repository_id) < (?, ?)`);
        params.push(cursor.key, cursor.id);
      }
      order = `${column} DESC, s.repository_id DESC`;
    }
    const select = `SELECT r.id, r.name, s.tags, s.bytes, s.pushed_at FROM repository_stats s JOIN repositories r ON r.id = s.repository_id WHERE ${where.join(' AND ')} ORDER BY ${order}`;
    let rows: Row[];
    if (filter === undefined) {
      rows = this.#q.all(`${select} LIMIT ?`, ...params, query.limit);
    } else if (scanAtMost === undefined) {
      rows = this.#q.all(`SELECT * FROM (${select}) WHERE instr(name, ?) > 0 LIMIT ?`, ...params, filter, query.limit);
    } else {
      rows = this.#q.all(`SELECT * FROM (${select} LIMIT ?) WHERE instr(name, ?) > 0 LIMIT ?`, ...params, scanAtMost, filter, query.limit);
    }
    return rows.map((row) => {
      const summary = toSummary(row);
      const key = query.sort === 'size' ? summary.bytes : (row['pushed_at'] as number);
      return { ...summary, cursor: query.sort === 'name' ? summary.name : `${key}:${row['id'] as number}` };
    });
  }

  async summary(repository: RepositoryName): Promise<Omit<RepositorySummary, 'cursor'> | undefined> {
    const row = this.#q.get(
      `SELECT r.name, s.tags, s.bytes, s.pushed_at FROM repositories r JOIN repository_stats s ON s.repository_id = r.id
       WHERE r.name = ? AND s.manifests > 0`,
      repository,
    );
    return row === undefined ? undefined : toSummary(row);
  }

  async tagTimes(repository: RepositoryName, tags: readonly Tag[]): Promise<Map<Tag, Date>> {
    if (tags.length === 0) return new Map();
    const rows = this.#q.all(
      `SELECT t.name, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id
       WHERE r.name = ? AND t.name IN (SELECT value FROM json_each(?))`,
      repository,
      JSON.stringify(tags),
    );
    return new Map(rows.map((row) => [row['name'] as Tag, new Date(row['updated_at'] as number)]));
  }
}

function toSummary(row: Row): Omit<RepositorySummary, 'cursor'> {
  const pushed = row['pushed_at'] as number;
  return {
    name: row['name'] as RepositoryName,
    tags: row['tags'] as number,
    bytes: row['bytes'] as number,
    ...(pushed > 0 ? { pushedAt: new Date(pushed) } : {}),
  };
}
