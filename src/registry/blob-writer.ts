import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/blob-store.ts';
import { checkDigest } from '../io/digest-check.ts';
import { MeteredStream, through } from '../io/metered-stream.ts';
import { algorithmOf, finishDigest, type Digest, type DigestAlgorithm } from '../oci/digest.ts';

/**
 * Stores a stream as a blob outside any upload session (conversions,
 * extractions, caches): hashed while written, verified against `expected`
 * when given, and visible only once complete. The caller links it.
 */
export async function writeBlob(
  store: BlobStore,
  source: Readable,
  options: { expected?: Digest; algorithm?: DigestAlgorithm; signal?: AbortSignal } = {},
): Promise<{ digest: Digest; size: number }> {
  const algorithm = options.expected === undefined ? (options.algorithm ?? 'sha256') : algorithmOf(options.expected);
  const hash = createHash(algorithm);
  const id = randomUUID();
  await store.uploads.create(id);
  try {
    const size = await store.uploads.append(id, 0, through(source, new MeteredStream(hash)), options.signal);
    const digest = finishDigest(hash, algorithm);
    if (options.expected !== undefined) checkDigest(options.expected, digest, (actual) => `content digest ${actual} does not match ${options.expected}`);
    await store.uploads.commit(id, digest, size);
    return { digest, size };
  } catch (error) {
    await store.uploads.remove(id).catch(() => undefined);
    throw error;
  }
}
