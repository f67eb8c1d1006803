import type { IncomingMessage } from 'node:http';
import { RegistryError } from '../errors/registry-error.ts';
import { readAtMost } from '../io/bounded-read.ts';

/**
 * Reads a whole request body of at most `limit` bytes (manifests). A larger
 * body is refused with 413 before it is read when Content-Length says so,
 * and as soon as it passes the limit otherwise.
 */
export async function readLimitedBody(request: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = Number(request.headers['content-length'] ?? Number.NaN);
  if (declared > limit) throw tooLarge(what, limit);
  return readAtMost(request, limit, () => tooLarge(what, limit));
}

/** True when the request carries a body (a length above zero, or chunked). */
export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return length !== undefined ? Number(length) > 0 : request.headers['transfer-encoding'] !== undefined;
}

/** The media type of a Content-Type header, without parameters. */
export function mediaTypeOf(header: string | undefined): string | undefined {
  const type = header?.split(';')[0]?.trim().toLowerCase();
  return type === '' ? undefined : type;
}

/** Query values that may be given once or repeated, as a list. */
export function queryValues(query: unknown, key: string): string[] {
  const value = (query as Record<string, unknown> | undefined)?.[key];
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** A query value given at most once. */
export function queryValue(query: unknown, key: string): string | undefined {
  return queryValues(query, key)[0];
}

function tooLarge(what: string, limit: number): RegistryError {
  const status = 413;
  const code = what === 'manifest' ? 'MANIFEST_INVALID' : 'SIZE_INVALID';
  return new RegistryError(code, `${what} is larger than ${limit} bytes`, { status, detail: { limit } });
}
