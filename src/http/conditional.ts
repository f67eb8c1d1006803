import type { FastifyReply, FastifyRequest } from 'fastify';

/** Entity tags in a list, weak or strong: `W/"…"` or `"…"`. */
const entityTag = /(?:W\/)?"([^"]*)"/g;

/**
 * Whether an If-None-Match header names the representation whose entity
 * tag is `"<opaque>"`: `*`, or a list holding that tag. The comparison is
 * the weak one (RFC 9110, section 13.1.2): `W/` is ignored.
 */
export function noneMatchHits(header: string, opaque: string): boolean {
  if (header.trim() === '*') return true;
  for (const match of header.matchAll(entityTag)) {
    if (match[1] === opaque) return true;
  }
  return false;
}

/**
 * For a GET or HEAD of content addressed by `digest` (its entity tag is
 * `"<digest>"`): when If-None-Match names it, answers 304 Not Modified with
 * the entity tag, the digest and `extra` headers, no body, and returns the
 * reply; otherwise undefined. Requests without the header cost one lookup.
 */
export function notModified(request: FastifyRequest, reply: FastifyReply, digest: string, extra?: Record<string, string>): FastifyReply | undefined {
  const header = request.headers['if-none-match'];
  if (header === undefined || !noneMatchHits(header, digest)) return undefined;
  reply.code(304).headers({ etag: `"${digest}"`, 'docker-content-digest': digest });
  if (extra !== undefined) reply.headers(extra);
  return reply.send();
}
