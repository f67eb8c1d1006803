import { Readable, Transform } from 'node:stream';
import type { ByteRange } from '../blobs/blob-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { through } from '../io/metered-stream.ts';
import { displayUrl, UpstreamError } from './errors.ts';
import { discard, type RegistryHttp } from './http.ts';
import { defaultRetryPolicy, withRetries } from './retry.ts';

/** Opens a blob's bytes again, whole or the inclusive range: uploads resume and retry with it. */
export type BlobOpener = (range?: ByteRange) => Promise<Readable>;

export interface UploadOptions {
  /** Blobs larger than this go up in PATCH chunks of this size (resumable); otherwise in one PUT. */
  chunkSize?: number;
  /** Try a cross-repository mount from this repository first. */
  mountFrom?: RepositoryName;
  /** Called with the bytes sent so far, for progress displays. */
  onProgress?: (bytes: number) => void;
  signal?: AbortSignal | undefined;
}

export type UploadOutcome = 'uploaded' | 'mounted';

interface UploadTarget {
  baseUrl: string;
  repository: RepositoryName;
  scopes: { scopes: string[]; repository: string };
}

/**
 * Uploads a blob. A mount is tried first when asked. Monolithic uploads
 * are POST then PUT, restarted from scratch on a temporary failure;
 * chunked uploads ask the registry where it stands after a failure and
 * resend only from there.
 */
export async function uploadBlob(
  http: RegistryHttp,
  target: UploadTarget,
  blob: { digest: Digest; size: number },
  open: BlobOpener,
  options: UploadOptions,
): Promise<UploadOutcome> {
  const { signal } = options;
  const chunked = options.chunkSize !== undefined && options.chunkSize > 0 && blob.size > options.chunkSize;
  return withRetries(
    defaultRetryPolicy,
    async (attempt) => {
      const session = await startSession(http, target, attempt === 1 ? options.mountFrom : undefined, blob.digest, signal);
      if (session.mounted) return 'mounted';
      const chunkSize = Math.max(options.chunkSize ?? 0, session.minChunk);
      const location = chunked ? await sendChunks(http, target, session.location, blob.size, chunkSize, open, options) : session.location;
      const finish = withDigest(location, blob.digest, target.baseUrl);
      const response = await http.send({
        method: 'PUT',
        url: finish,
        headers: { 'content-type': 'application/octet-stream' },
        body: async () =>
          chunked ? { bytes: new Uint8Array(0) } : { stream: Readable.toWeb(counting(await open(), options.onProgress)) as ReadableStream<Uint8Array>, length: blob.size },
        ...target.scopes,
        retry: false,
        signal,
      });
      await discard(response);
      return 'uploaded';
    },
    { signal },
  );
}

async function startSession(
  http: RegistryHttp,
  target: UploadTarget,
  mountFrom: RepositoryName | undefined,
  digest: Digest,
  signal: AbortSignal | undefined,
): Promise<{ mounted: true } | { mounted: false; location: string; minChunk: number }> {
  const url = new URL(`${target.baseUrl}/v2/${target.repository}/blobs/uploads/`);
  const scopes = mountFrom === undefined ? target.scopes : { ...target.scopes, scopes: [...target.scopes.scopes, `repository:${mountFrom}:pull`] };
  if (mountFrom !== undefined) {
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', mountFrom);
  }
  const response = await http.send({ method: 'POST', url: url.toString(), headers: { 'content-length': '0' }, ...scopes, signal });
  await discard(response);
  if (response.status === 201 && mountFrom !== undefined) return { mounted: true };
  const location = response.headers.get('location');
  if (location === null) throw new UpstreamError(`POST ${displayUrl(url.toString())}: no Location for the upload`, { status: response.status, temporary: false });
  const minChunk = Number(response.headers.get('oci-chunk-min-length') ?? 0);
  return { mounted: false, location: new URL(location, target.baseUrl).toString(), minChunk: Number.isSafeInteger(minChunk) ? minChunk : 0 };
}

/** PATCHes the blob in chunks, resuming from the registry's own count after a failure. */
async function sendChunks(http: RegistryHttp, target: UploadTarget, start: string, size: number, chunkSize: number, open: BlobOpener, options: UploadOptions): Promise<string> {
  let location = start;
  let offset = 0;
  while (offset < size) {
    const from = offset;
    const end = Math.min(from + chunkSize, size) - 1;
    const result = await withRetries(
      defaultRetryPolicy,
      async (attempt) => {
        if (attempt > 1) {
          // Where does the registry stand? It may have kept part of the failed chunk, or all of it.
          const status = await uploadStatus(http, target, location, options.signal);
          location = status.location;
          if (status.next > end) return status;
          if (status.next !== from) return status;
        }
        const response = await http.send({
          method: 'PATCH',
          url: location,
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${end}` },
          body: async () => ({
            stream: Readable.toWeb(counting(await open({ start: from, end }), options.onProgress, from)) as ReadableStream<Uint8Array>,
            length: end - from + 1,
          }),
          ...target.scopes,
          retry: false,
          signal: options.signal,
        });
        await discard(response);
        return { location: new URL(response.headers.get('location') ?? location, target.baseUrl).toString(), next: rangeEnd(response) ?? end + 1 };
      },
      { signal: options.signal },
    );
    location = result.location;
    offset = result.next;
  }
  return location;
}

async function uploadStatus(http: RegistryHttp, target: UploadTarget, location: string, signal: AbortSignal | undefined): Promise<{ location: string; next: number }> {
  const response = await http.send({ method: 'GET', url: location, ...target.scopes, signal });
  await discard(response);
  return { location: new URL(response.headers.get('location') ?? location, target.baseUrl).toString(), next: rangeEnd(response) ?? 0 };
}

/** `Range: 0-<last>` → the next offset to send. */
function rangeEnd(response: Response): number | undefined {
  const match = /^(?:bytes=)?0-(\d+)$/.exec(response.headers.get('range') ?? '');
  return match?.[1] === undefined ? undefined : Number(match[1]) + 1;
}

function withDigest(location: string, digest: Digest, baseUrl: string): string {
  const url = new URL(location, baseUrl);
  url.searchParams.set('digest', digest);
  return url.toString();
}

/** Reports bytes as they pass (counting from `base`), without buffering. */
function counting(stream: Readable, onProgress: ((bytes: number) => void) | undefined, base = 0): Readable {
  if (onProgress === undefined) return stream;
  let sent = base;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sent += chunk.length;
      onProgress(sent);
      callback(null, chunk);
    },
  });
  return through(stream, counter);
}
