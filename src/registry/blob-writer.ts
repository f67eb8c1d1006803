import { createHash, randomUUID, type Hash } from 'node:crypto';
import { pipeline } from 'node:stream';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { BlobStore } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { algorithmOf, finishDigest, type Digest, type DigestAlgorithm } from '../oci/digest.ts';

/**
 * Passes bytes through, feeding them to a hash and counting them; fails the
 * stream when more than `expectedLength` bytes arrive, or fewer by the end.
 */
export class MeteredStream extends Transform {
  bytes = 0;
  readonly #hash: Hash | undefined;
  readonly #expectedLength: number | undefined;
  readonly #cap: { limit: number; error: () => Error } | undefined;

  /** `cap`: fail with `cap.error()` as soon as more than `cap.limit` bytes pass, whatever the client declared. */
  constructor(hash: Hash | undefined, expectedLength?: number, cap?: { limit: number; error: () => Error }) {
    super();
    this.#hash = hash;
    this.#expectedLength = expectedLength;
    this.#cap = cap;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.#cap !== undefined && this.bytes > this.#cap.limit) {
      callback(this.#cap.error());
      return;
    }
    if (this.#expectedLength !== undefined && this.bytes > this.#expectedLength) {
      callback(lengthMismatch(this.#expectedLength, this.bytes));
      return;
    }
    this.#hash?.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#expectedLength !== undefined && this.bytes !== this.#expectedLength) {
      callback(lengthMismatch(this.#expectedLength, this.bytes));
      return;
    }
    callback();
  }
}

/** `source` piped through `stage`, with errors on either side failing the result. */
export function through<T extends Transform>(source: Readable, stage: T): T {
  return pipeline(source, stage, () => undefined) as unknown as T;
}

/** Hashes a whole stream with `algorithm`. */
export async function digestStream(source: Readable, algorithm: DigestAlgorithm): Promise<{ digest: Digest; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of source) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: finishDigest(hash, algorithm), size };
}

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
    if (options.expected !== undefined && digest !== options.expected) {
      throw new RegistryError('DIGEST_INVALID', `content digest ${digest} does not match ${options.expected}`, {
        detail: { expected: options.expected, actual: digest },
      });
    }
    await store.uploads.commit(id, digest, size);
    return { digest, size };
  } catch (error) {
    await store.uploads.remove(id).catch(() => undefined);
    throw error;
  }
}

function lengthMismatch(expected: number, received: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `expected ${expected} bytes, received ${received > expected ? 'more' : received}`, {
    detail: { expected, received },
  });
}
