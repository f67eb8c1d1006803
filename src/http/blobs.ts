import { parseDigest } from '../oci/digest.ts';
import { notModified } from './conditional.ts';
import { sendFileRegion } from './file-sender.ts';
import { parseRangeHeader } from './range.ts';
import type { V2Request } from './v2-routes.ts';

/** Content addressed by digest never changes. */
const immutable = 'max-age=31536000, immutable';

/** The headers of a blob answer (GET, HEAD, ranges), but its length; hot reads send the same. */
export function blobHeaders(digest: string): Record<string, string> {
  return { 'docker-content-digest': digest, 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes', etag: `"${digest}"`, 'cache-control': immutable };
}

/** GET and HEAD /v2/<name>/blobs/<digest>, with single byte ranges; 304 when If-None-Match names it. */
export async function getBlob({ request, reply, params, signal, repository }: V2Request): Promise<unknown> {
  const digest = parseDigest(params['digest'] ?? '');
  const repo = await repository();
  const size = await repo.blobSize(digest, signal);
  // If-None-Match is evaluated before Range (RFC 9110, section 13.2.2).
  const unchanged = notModified(request, reply, digest, { 'cache-control': immutable });
  if (unchanged !== undefined) return unchanged;
  const range = parseRangeHeader(request.headers.range, size);
  reply.headers(blobHeaders(digest));
  if (range !== undefined) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`);
  }
  reply.header('content-length', range === undefined ? size : range.end - range.start + 1);
  if (request.method === 'HEAD') return reply.send();
  const body = await repo.openBlob(digest, range, signal);
  if (body.kind === 'redirect') {
    return reply.code(307).removeHeader('content-length').removeHeader('content-range').header('location', body.url).send();
  }
  if (body.kind === 'file') return sendFileRegion(reply, body.region, signal);
  return reply.send(body.stream);
}

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from this repository. */
export async function deleteBlob({ reply, params, writer }: V2Request): Promise<unknown> {
  const digest = parseDigest(params['digest'] ?? '');
  await (await writer()).deleteBlob(digest);
  return reply.code(202).header('content-length', 0).send();
}
