import type { ByteRange } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { ChunkBounds } from '../registry/repository.ts';

/**
 * The single byte range a GET asks for, resolved against the blob's size.
 * Undefined means "the whole blob": no header, a syntax we do not serve
 * (several ranges), or other units, which RFC 9110 lets a server ignore.
 */
export function parseRangeHeader(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  let range: ByteRange;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) throw unsatisfiable(size);
    range = { start: Math.max(size - suffix, 0), end: size - 1 };
  } else {
    const start = Number(first);
    const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
    if (last !== '' && Number(last) < start) return undefined;
    range = { start, end };
  }
  if (range.start >= size) throw unsatisfiable(size);
  return range;
}

/** Where a PATCH or PUT chunk says it goes: `Content-Range: <start>-<end>` (inclusive) and Content-Length. */
export function parseChunkBounds(contentRange: string | undefined, contentLength: string | undefined): ChunkBounds {
  const bounds: ChunkBounds = {};
  if (contentLength !== undefined) bounds.length = Number(contentLength);
  if (contentRange === undefined) return bounds;
  const match = /^(?:bytes[= ])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(contentRange.trim());
  if (match === null) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `invalid Content-Range "${contentRange.slice(0, 100)}"; expected <start>-<end>`);
  }
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `Content-Range ${start}-${end} ends before it starts`, { status: 416 });
  }
  bounds.start = start;
  bounds.end = end;
  return bounds;
}

function unsatisfiable(size: number): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `the range is outside the blob's ${size} bytes`, {
    status: 416,
    headers: { 'content-range': `bytes */${size}` },
  });
}
