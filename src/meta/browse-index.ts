import type { RepositoryName, Tag } from '../oci/names.ts';

/** How a repositories listing is ordered: by name (A→Z), last push (newest first) or size (largest first). */
export type RepositorySort = 'name' | 'pushed' | 'size';

export interface RepositoryQuery {
  /** Names containing this (or starting with it, with `match: 'prefix'`); lowercase name characters only. */
  search?: string;
  match?: 'substring' | 'prefix';
  /** Only names starting with one of these (what the viewer may see at most). */
  within?: readonly string[];
  sort: RepositorySort;
  /** The `cursor` of the last row of the previous page. */
  after?: string;
  limit: number;
}

/** One repository with what the repositories page shows. */
export interface RepositorySummary {
  name: RepositoryName;
  tags: number;
  /** Bytes of the distinct blobs linked into the repository. */
  bytes: number;
  /** When a manifest or tag was last pushed; undefined when never. */
  pushedAt?: Date;
  /** Pass as `after` to continue after this row. */
  cursor: string;
}

/**
 * Reads for the web UI over the namespace: repositories with their tag
 * count, size and last push, searched and ordered by indexes kept up to
 * date by the database itself (triggers), with keyset paging, so a page
 * costs the same at 100,000 repositories as at 100. Every implementation
 * passes test/meta/browse-contract.ts.
 */
export interface BrowseIndex {
  /** Repositories holding at least one manifest, in the query's order, after its cursor. */
  repositories(query: RepositoryQuery): Promise<RepositorySummary[]>;
  /** One repository's summary; undefined when it holds no manifest. */
  summary(repository: RepositoryName): Promise<Omit<RepositorySummary, 'cursor'> | undefined>;
  /** When each of `tags` was last pushed (moved); absent tags are left out. */
  tagTimes(repository: RepositoryName, tags: readonly Tag[]): Promise<Map<Tag, Date>>;
}

/** Every name character sorts below "~": `[prefix, prefix + "~")` is a prefix's range. */
export function prefixRanges(within: readonly string[] | undefined): [string, string][] | undefined {
  if (within === undefined || within.includes('')) return undefined;
  return within.map((prefix) => [prefix, `${prefix}~`]);
}

/**
 * Rows a substring search first reads in the listing's own order: a common
 * text fills a page within them, cheaper than sorting all its matches; a
 * rare one then goes through the trigram index.
 */
export const probeRows = 2000;

/** Escapes a search for SQL LIKE with `\` as the escape character. */
export function likeLiteral(search: string): string {
  return search.replace(/[\\%_]/g, '\\$&');
}

/** Cursor text for the sort keys of a row: `<key>:<id>` for size and push, the name for name. */
export function parseCursor(cursor: string | undefined): { key: number; id: number } | undefined {
  const match = cursor === undefined ? null : /^(-?\d+):(\d+)$/.exec(cursor);
  return match === null ? undefined : { key: Number(match[1]), id: Number(match[2]) };
}
