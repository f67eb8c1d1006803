import { RegistryError } from '../errors/registry-error.ts';
import type { RepositoryQuery, RepositorySort, RepositorySummary } from '../meta/browse-index.ts';
import { isRepositoryName, type RepositoryName } from '../oci/names.ts';
import { compareNames } from '../registry/router.ts';
import type { RepositoryKind, UiDependencies } from './dependencies.ts';
import type { Viewer } from './session.ts';

/** One row of the repositories listing. */
export interface RepositoryRow {
  name: RepositoryName;
  kind: RepositoryKind;
  /** Undefined for kinds the browse index does not hold (archive, droplet). */
  tags?: number;
  bytes?: number;
  pushedAt?: Date;
}

export interface RepositoryListing {
  rows: RepositoryRow[];
  /** Pass as `after` for the next page; absent on the last. */
  next?: string;
  /** True when the page stopped early after reading past many names the viewer may not see. */
  partial: boolean;
}

export interface ListingRequest {
  search: string;
  match: 'substring' | 'prefix';
  sort: RepositorySort;
  after?: string;
  limit: number;
}

/** Rows read at most per request past names the viewer may not see: a page's cost stays bounded. */
const maxScanned = 5000;
const batchSize = 500;

/** Parses the listing's query parameters (shared by the page and the JSON API). */
export function listingRequest(query: Record<string, string | undefined>, defaultLimit = 50): ListingRequest {
  const search = (query['q'] ?? '').trim().toLowerCase();
  if (search.length > 255 || !/^[a-z0-9._/-]*$/.test(search)) {
    throw new RegistryError('NAME_INVALID', 'search for lowercase letters, digits, ".", "_", "-" and "/" (what repository names hold)', { status: 400 });
  }
  const sort = query['sort'] ?? 'name';
  if (sort !== 'name' && sort !== 'pushed' && sort !== 'size') throw new RegistryError('UNSUPPORTED', 'sort by name, pushed or size', { status: 400 });
  const limit = query['limit'] === undefined ? defaultLimit : Number(query['limit']);
  if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new RegistryError('UNSUPPORTED', 'limit must be 1 to 500', { status: 400 });
  const after = query['after'];
  return { search, match: query['match'] === 'prefix' ? 'prefix' : 'substring', sort, limit, ...(after === undefined || after === '' ? {} : { after }) };
}

/**
 * A page of repositories the viewer may pull, in the requested order. The
 * browse index is read in keyset batches and names the viewer may not see
 * are skipped; after `maxScanned` hidden rows the page ends early with a
 * cursor, so a viewer who sees little of a large registry still gets an
 * answer in bounded time. Kinds outside the index (archive, droplet) join
 * the name order.
 */
export async function listRepositories(deps: UiDependencies, viewer: Viewer, request: ListingRequest): Promise<RepositoryListing> {
  const rows: RepositoryRow[] = [];
  let after = request.after;
  let scanned = 0;
  let size = request.limit + 1;
  let exhausted = false;
  // A few prefix ranges narrow the index scan to what the viewer may see; many would cost more than they save.
  const prefixes = viewer.caller.visiblePrefixes;
  const within = prefixes !== undefined && prefixes.length <= 32 ? { within: prefixes } : {};
  while (rows.length < request.limit + 1 && scanned < maxScanned) {
    const query: RepositoryQuery = { sort: request.sort, match: request.match, limit: size, ...(request.search === '' ? {} : { search: request.search }), ...within };
    const batch = await deps.browse.repositories(after === undefined ? query : { ...query, after });
    for (const summary of batch) {
      scanned++;
      after = summary.cursor;
      if (viewer.caller.sees(summary.name)) rows.push(toRow(deps, summary));
      if (rows.length > request.limit) break;
    }
    if (batch.length < size) {
      exhausted = true;
      break;
    }
    size = batchSize;
  }
  if (request.sort === 'name') return mergeUnindexed(deps, viewer, request, rows, exhausted, scanned >= maxScanned ? after : undefined);
  return page(rows, request.limit, exhausted, scanned >= maxScanned, after, (row) => cursorOf(request.sort, row));
}

function toRow(deps: UiDependencies, summary: RepositorySummary): RepositoryRow & { cursor: string } {
  return {
    name: summary.name,
    kind: deps.kindOf(summary.name),
    tags: summary.tags,
    bytes: summary.bytes,
    cursor: summary.cursor,
    ...(summary.pushedAt === undefined ? {} : { pushedAt: summary.pushedAt }),
  };
}

function cursorOf(sort: RepositorySort, row: RepositoryRow): string {
  return sort === 'name' ? row.name : ((row as RepositoryRow & { cursor?: string }).cursor ?? row.name);
}

function page(
  rows: RepositoryRow[],
  limit: number,
  exhausted: boolean,
  cutShort: boolean,
  scannedTo: string | undefined,
  cursor: (row: RepositoryRow) => string,
): RepositoryListing {
  const shown = rows.slice(0, limit).map(strip);
  if (rows.length > limit) return { rows: shown, next: cursor(rows[limit - 1] as RepositoryRow), partial: false };
  if (cutShort && !exhausted && scannedTo !== undefined) return { rows: shown, next: scannedTo, partial: true };
  return { rows: shown, partial: false };
}

function strip(row: RepositoryRow): RepositoryRow {
  const { name, kind, tags, bytes, pushedAt } = row;
  return { name, kind, ...(tags === undefined ? {} : { tags }), ...(bytes === undefined ? {} : { bytes }), ...(pushedAt === undefined ? {} : { pushedAt }) };
}

/** Adds names of sources outside the index (archive, droplet) into a name-ordered page. */
async function mergeUnindexed(
  deps: UiDependencies,
  viewer: Viewer,
  request: ListingRequest,
  indexed: RepositoryRow[],
  exhausted: boolean,
  scannedTo: string | undefined,
): Promise<RepositoryListing> {
  // Indexed rows past the last one read are unknown: other names may only fill up to there.
  const bound = exhausted ? undefined : (indexed[indexed.length - 1]?.name ?? scannedTo);
  const extra: RepositoryRow[] = [];
  for (const source of deps.unindexed) {
    const names = await source.catalog({ ...(request.after === undefined ? {} : { last: request.after }), limit: 1000 });
    for (const name of names) {
      if (!isRepositoryName(name) || (bound !== undefined && name > bound) || !viewer.caller.sees(name)) continue;
      const matches = request.search === '' || (request.match === 'prefix' ? name.startsWith(request.search) : name.includes(request.search));
      if (matches && !indexed.some((row) => row.name === name)) extra.push({ name, kind: source.kind });
    }
  }
  const merged = [...indexed, ...extra].sort((a, b) => compareNames(a.name, b.name));
  return page(merged, request.limit, exhausted && extra.length <= request.limit, scannedTo !== undefined, scannedTo, (row) => row.name);
}
