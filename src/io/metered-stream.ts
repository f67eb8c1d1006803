import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { RegistryError } from '../errors/registry-error.ts';
import { finishDigest, type Digest, type DigestAlgorithm } from '../oci/digest.ts';

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

function lengthMismatch(expected: number, received: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `expected ${expected} bytes, received ${received > expected ? 'more' : received}`, {
    detail: { expected, received },
  });
}
