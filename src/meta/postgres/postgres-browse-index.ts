import type pg from 'pg';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import { likeLiteral, parseCursor, prefixRanges, type BrowseIndex, type RepositoryQuery, type RepositorySummary } from '../browse-index.ts';

type Row = Record<string, unknown>;

/**
 * Matches past which a substring search counts as common. Walking the
 * order reads about limit × repositories / matches rows; sorting the
 * matches reads all of them: at 100,000 repositories and pages of 50 the
 * two cost the same near 2,000 matches.
 */
const commonMatches = 2000;

/** The browse index on the PostgresMetaStore's pool (tables, triggers and the trigram index: browse-migration.ts). */
export class PostgresBrowseIndex implements BrowseIndex {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async repositories(query: RepositoryQuery): Promise<RepositorySummary[]> {
    const search = query.search ?? '';
    if (search === '' || query.match === 'prefix') return this.#page(query, 'walk');
    if (search.length < 3) return this.#page(query, 'walk');
    // A common text is met early walking the order's index; a rare one is
    // found through the pg_trgm index, its few matches then sorted. Which
    // it is, the trigram index tells cheaply (it stops counting at the limit).
    const { rows } = await this.#pool.query<Row>(`SELECT count(*) AS found FROM (SELECT 1 FROM repositories WHERE name LIKE $1 LIMIT ${commonMatches}) AS matching`, [
      `%${likeLiteral(search)}%`,
    ]);
    return this.#page(query, Number(rows[0]?.['found'] ?? 0) >= commonMatches ? 'walk' : 'matches');
  }

  async #page(query: RepositoryQuery, searchBy: 'walk' | 'matches'): Promise<RepositorySummary[]> {
    const where = ['s.manifests > 0'];
    const params: unknown[] = [];
    let matches = '';
    const bind = (value: unknown) => `$${params.push(value)}`;
    const search = query.search ?? '';
    if (search !== '' && query.match === 'prefix') {
      where.push(`r.name >= ${bind(search)} AND r.name < ${bind(`${search}~`)}`);
    } else if (search !== '' && searchBy === 'walk') {
      // strpos() cannot use the trigram index: the planner walks the order's index.
      where.push(`strpos(r.name, ${bind(search)}) > 0`);
    } else if (search !== '') {
      // Materialized, so that the planner takes the matches first rather than walk the order's index hoping to meet them.
      where.push(`r.id IN (SELECT id FROM matches)`);
      matches = `WITH matches AS MATERIALIZED (SELECT id FROM repositories WHERE name LIKE ${bind(`%${likeLiteral(search)}%`)}) `;
    }
    const ranges = prefixRanges(query.within);
    if (ranges !== undefined) {
      where.push(ranges.length === 0 ? 'false' : `(${ranges.map(([low, high]) => `(r.name >= ${bind(low)} AND r.name < ${bind(high)})`).join(' OR ')})`);
    }
    let order: string;
    if (query.sort === 'name') {
      if (query.after !== undefined) where.push(`r.name > ${bind(query.after)}`);
      order = 'r.name';
    } else {
      const column = query.sort === 'size' ? 's.bytes' : 's.pushed_at';
      const cursor = parseCursor(query.after);
      if (cursor !== undefined) where.push(`(${column}, s.repository_id) < (${bind(cursor.key)}, ${bind(cursor.id)})`);
      order = `${column} DESC, s.repository_id DESC`;
    }
    const select = `SELECT r.id, r.name, s.tags, s.bytes, s.pushed_at FROM repository_stats s JOIN repositories r ON r.id = s.repository_id
       WHERE ${where.join(' AND ')} ORDER BY ${order}`;
    const sql = `${matches}${select} LIMIT ${bind(query.limit)}`;
    const { rows } = await this.#pool.query<Row>(sql, params);
    return rows.map((row) => {
      const summary = toSummary(row);
      const key = query.sort === 'size' ? summary.bytes : Number(row['pushed_at']);
      return { ...summary, cursor: query.sort === 'name' ? summary.name : `${key}:${String(row['id'])}` };
    });
  }

  async summary(repository: RepositoryName): Promise<Omit<RepositorySummary, 'cursor'> | undefined> {
    const { rows } = await this.#pool.query<Row>(
      `SELECT r.name, s.tags, s.bytes, s.pushed_at FROM repositories r JOIN repository_stats s ON s.repository_id = r.id
       WHERE r.name = $1 AND s.manifests > 0`,
      [repository],
    );
    return rows[0] === undefined ? undefined : toSummary(rows[0]);
  }

  async tagTimes(repository: RepositoryName, tags: readonly Tag[]): Promise<Map<Tag, Date>> {
    if (tags.length === 0) return new Map();
    const { rows } = await this.#pool.query<Row>(
      `SELECT t.name, t.updated_at FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = ANY($2::text[])`,
      [repository, tags],
    );
    return new Map(rows.map((row) => [row['name'] as Tag, row['updated_at'] as Date]));
  }
}

function toSummary(row: Row): Omit<RepositorySummary, 'cursor'> {
  const pushed = Number(row['pushed_at']);
  return {
    name: row['name'] as RepositoryName,
    tags: Number(row['tags']),
    bytes: Number(row['bytes']),
    ...(pushed > 0 ? { pushedAt: new Date(pushed) } : {}),
  };
}
