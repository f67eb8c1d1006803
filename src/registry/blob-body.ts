import type { BlobStore, ByteRange } from '../blobs/blob-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { BlobBody } from './repository.ts';

/**
 * A stored blob in the form the HTTP layer sends best: a 307 to the store
 * when redirects are on and it can give a URL; a region of a local file when
 * the store keeps files (sent with reused buffers); a stream otherwise.
 */
export async function storedBlobBody(
  blobs: BlobStore,
  digest: Digest,
  range: ByteRange | undefined,
  options: { redirects: boolean; signal?: AbortSignal | undefined },
): Promise<BlobBody> {
  if (options.redirects && blobs.redirectUrl !== undefined) {
    const url = await blobs.redirectUrl(digest);
    if (url !== undefined) return { kind: 'redirect', url };
  }
  if (blobs.openRegion !== undefined) return { kind: 'file', region: await blobs.openRegion(digest, range) };
  return { kind: 'stream', stream: await blobs.open(digest, range, options.signal) };
}
