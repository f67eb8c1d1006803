import { createHash, type Hash } from 'node:crypto';
import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import { RegistryError } from '../errors/registry-error.ts';
import { algorithmOf, finishDigest, type Digest, type DigestAlgorithm } from '../oci/digest.ts';
import { checkDigest } from './digest-check.ts';

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

/**
 * A MeteredStream for one blob: fails the stream at its end unless exactly
 * `expected.size` bytes with `expected.digest` passed (SIZE_INVALID or
 * DIGEST_INVALID, `what` naming the blob); `onProgress` hears the bytes so far.
 */
export class VerifiedBlobStream extends MeteredStream {
  readonly #expected: { digest: Digest; size: number };
  readonly #hash: Hash;
  readonly #what: string;
  readonly #onProgress: ((bytes: number) => void) | undefined;

  constructor(expected: { digest: Digest; size: number }, what: string, onProgress?: (bytes: number) => void) {
    const hash = createHash(algorithmOf(expected.digest));
    super(hash, expected.size);
    this.#expected = expected;
    this.#hash = hash;
    this.#what = what;
    this.#onProgress = onProgress;
  }

  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback): void {
    super._transform(chunk, encoding, (error, data) => {
      if (error === null || error === undefined) this.#onProgress?.(this.bytes);
      callback(error, data);
    });
  }

  override _flush(callback: TransformCallback): void {
    super._flush((error) => {
      if (error !== null && error !== undefined) {
        callback(error);
        return;
      }
      try {
        const { digest } = this.#expected;
        checkDigest(digest, finishDigest(this.#hash, algorithmOf(digest)), (actual) => `${this.#what} ${digest}: the source sent content with digest ${actual}`);
        callback();
      } catch (mismatch) {
        callback(mismatch as Error);
      }
    });
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
