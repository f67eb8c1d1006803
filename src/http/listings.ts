import { setImmediate as yieldToOtherRequests } from 'node:timers/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import type { Page } from '../meta/meta-store.ts';
import { parseDigest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { mediaTypes } from '../oci/media-types.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { RepositoryRouter } from '../registry/router.ts';
import type { Caller } from './access.ts';
import { queryValue } from './request-parts.ts';
import type { V2Request } from './v2-routes.ts';

/** The most entries one page returns, whatever `n` asks for; the Link header leads on. */
export const maxPageSize = 10_000;

/** GET and HEAD /v2/<name>/tags/list?n=&last= */
export async function listTags({ request, reply, name, signal, repository }: V2Request): Promise<unknown> {
  const page = parsePage(request.query);
  const repo = await repository();
  const { entries, next } = await paginate(page, (probe) => repo.tags(probe, signal));
  if (next !== undefined) reply.header('link', nextLink(`/v2/${name}/tags/list`, page, next));
  return sendListing(request, reply, 'application/json', JSON.stringify({ name, tags: entries }));
}

/** GET and HEAD /v2/_catalog?n=&last= across every repository source; with a caller, only what it may pull. */
export async function listCatalog(request: FastifyRequest, reply: FastifyReply, router: RepositoryRouter, caller?: Caller): Promise<unknown> {
  const page = parsePage(request.query);
  const { entries, next } = await paginate(page, (probe) => (caller === undefined ? router.catalog(probe) : visibleCatalog(router, probe, (name) => caller.sees(name))));
  if (next !== undefined) reply.header('link', nextLink('/v2/_catalog', page, next));
  return sendListing(request, reply, 'application/json', JSON.stringify({ repositories: entries }));
}

/** Referrers one response lists at most; the Link header leads on. */
export const referrersPageSize = 1000;

/**
 * GET /v2/<name>/referrers/<digest>[?artifactType=][&last=]: always an
 * index, empty when nothing refers. Pages of `referrersPageSize` in digest
 * order, linked with `last`, as the spec allows a registry to paginate.
 */
export async function listReferrers({ request, reply, params, name, signal, repository }: V2Request): Promise<unknown> {
  const subject = parseDigest(params['digest'] ?? '');
  const artifactType = queryValue(request.query, 'artifactType');
  const last = queryValue(request.query, 'last');
  const page: Page = { limit: referrersPageSize + 1, ...(last === undefined ? {} : { last }) };
  const found = await (await repository()).referrers(subject, artifactType, signal, page);
  // Kinds with few referrers answer all of them: order and cut them the same way.
  const after = found.filter((descriptor) => last === undefined || descriptor.digest > last).sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  const manifests = after.slice(0, referrersPageSize);
  if (after.length > referrersPageSize) {
    const query = new URLSearchParams({ ...(artifactType === undefined ? {} : { artifactType }), last: (manifests[manifests.length - 1] as Descriptor).digest });
    reply.header('link', `</v2/${name}/referrers/${subject}?${query.toString()}>; rel="next"`);
  }
  if (artifactType !== undefined) reply.header('oci-filters-applied', 'artifactType');
  return sendListing(request, reply, mediaTypes.ociIndex, JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests }));
}

/** A listing's JSON; HEAD gets its headers (with the length GET would send) and no body. */
function sendListing(request: FastifyRequest, reply: FastifyReply, contentType: string, json: string): FastifyReply {
  // Bytes, not a string: the framework would add a charset to the content type of a GET only.
  const body = Buffer.from(json);
  reply.header('content-type', contentType).header('content-length', body.byteLength);
  return reply.send(request.method === 'HEAD' ? undefined : body);
}

/** How many names are read per round while filtering the catalog. */
const catalogBatch = 1000;

/**
 * A catalog page holding only visible names: reads on past hidden ones
 * until the page is full or the catalog ends, so pages stay full and the
 * Link header's `last` is the last name shown.
 */
async function visibleCatalog(router: RepositoryRouter, page: Page, visible: (name: RepositoryName) => boolean): Promise<RepositoryName[]> {
  const shown: RepositoryName[] = [];
  let last = page.last;
  for (;;) {
    const batch = await router.catalog({ ...(last === undefined ? {} : { last }), limit: catalogBatch });
    for (const name of batch) {
      if (!visible(name)) continue;
      shown.push(name);
      if (page.limit !== undefined && shown.length >= page.limit) return shown;
    }
    if (batch.length < catalogBatch) return shown;
    last = batch[batch.length - 1];
    // Past many hidden names this loop could hold the thread: let other requests in between batches.
    await yieldToOtherRequests();
  }
}

function parsePage(query: unknown): Page {
  const page: Page = {};
  const last = queryValue(query, 'last');
  if (last !== undefined) page.last = last;
  const n = queryValue(query, 'n');
  if (n !== undefined) {
    if (!/^\d+$/.test(n)) {
      throw new RegistryError('UNSUPPORTED', `n must be a non-negative integer, not "${n.slice(0, 50)}"`, { status: 400 });
    }
    page.limit = Math.min(Number(n), maxPageSize);
  }
  return page;
}

/**
 * Fetches one entry more than asked, to know whether a next page exists.
 * Without `n` a page holds at most `maxPageSize` entries and the Link header
 * leads on (clients follow it, as they do for Docker Hub), so no request
 * reads or holds a list in proportion to its length.
 */
async function paginate<T extends string>(page: Page, fetch: (probe: Page) => Promise<T[]>): Promise<{ entries: T[]; next?: string }> {
  const limit = page.limit ?? maxPageSize;
  if (limit === 0) return { entries: [] };
  const entries = await fetch({ ...page, limit: limit + 1 });
  if (entries.length <= limit) return { entries };
  const shown = entries.slice(0, limit);
  return { entries: shown, next: shown[shown.length - 1] as string };
}

function nextLink(path: string, page: Page, last: string): string {
  const query = new URLSearchParams({ n: String(page.limit ?? maxPageSize), last });
  return `<${path}?${query.toString()}>; rel="next"`;
}
