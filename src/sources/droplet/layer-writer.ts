import { createHash } from 'node:crypto';
import { finished, Transform, type Readable, type TransformCallback, type Writable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { finishDigest } from '../../oci/digest.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import { MeteredStream, through } from '../../io/metered-stream.ts';
import type { StoredLayer } from '../../meta/droplet-store.ts';

/**
 * Stores an uncompressed tar stream as a gzip layer blob. One pass: the
 * diff_id is hashed from the tar bytes on their way into gzip, the layer
 * digest by writeBlob from what gzip produces.
 */
export async function storeTarAsLayer(blobs: BlobStore, tar: Readable, signal?: AbortSignal): Promise<StoredLayer> {
  const tarHash = createHash('sha256');
  const gzipped = through(through(tar, new MeteredStream(tarHash)), createGzip());
  const { digest, size } = await writeBlob(blobs, gzipped, signal === undefined ? {} : { signal });
  return { digest, size, diffId: finishDigest(tarHash, 'sha256') };
}

/**
 * Stores a gzip-compressed tar as a layer blob exactly as it is (no
 * recompression: a rootfs is hundreds of megabytes), while a side branch
 * decompresses the same bytes to hash the diff_id and check that they are
 * a tar. Both happen in the one pass over the input.
 */
export async function storeGzipTarAsLayer(blobs: BlobStore, gzip: Readable, what: string, signal?: AbortSignal): Promise<StoredLayer> {
  const tarHash = createHash('sha256');
  const inflate = createGunzip();
  const checked = through(through(inflate, new MeteredStream(tarHash)), new TarHeaderCheck(what));
  checked.resume();
  const { digest, size } = await writeBlob(blobs, through(gzip, new Tee(inflate, checked)), signal === undefined ? {} : { signal });
  return { digest, size, diffId: finishDigest(tarHash, 'sha256') };
}

/**
 * Passes bytes through unchanged and writes them to `side` too, waiting
 * while the side is behind (bounded memory). Fails when the side fails;
 * ends only once `sideEnd` (the end of the side's pipeline) has finished.
 */
class Tee extends Transform {
  readonly #side: Writable;
  #sideError: Error | undefined;
  #sideDone = false;
  #onSideDone: ((error?: Error) => void) | undefined;

  constructor(side: Writable, sideEnd: Readable) {
    super();
    this.#side = side;
    finished(sideEnd, (error) => {
      this.#sideDone = true;
      if (error) {
        this.#sideError = error;
        this.destroy(error);
      }
      this.#onSideDone?.(error ?? undefined);
    });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#sideError !== undefined) {
      callback(this.#sideError);
      return;
    }
    if (this.#side.write(chunk)) callback(null, chunk);
    else this.#side.once('drain', () => callback(null, chunk));
  }

  override _flush(callback: TransformCallback): void {
    this.#side.end();
    if (this.#sideDone) callback(this.#sideError ?? null);
    else this.#onSideDone = (error) => callback(error ?? null);
  }
}

const tarBlockSize = 512;
const ustarMagicOffset = 257;

/**
 * Fails the stream unless its first block is a POSIX (ustar) tar header,
 * so that a file that is not a tar archive is refused with a clear error
 * instead of becoming a layer no client can unpack. Holds at most one block.
 */
export class TarHeaderCheck extends Transform {
  #head: Buffer[] = [];
  #headBytes = 0;
  #checked = false;
  readonly #what: string;

  constructor(what: string) {
    super();
    this.#what = what;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.#checked) {
      callback(null, chunk);
      return;
    }
    this.#head.push(chunk);
    this.#headBytes += chunk.length;
    if (this.#headBytes < tarBlockSize) {
      callback();
      return;
    }
    callback(this.#check(), Buffer.concat(this.#head));
    this.#head = [];
  }

  override _flush(callback: TransformCallback): void {
    callback(this.#checked ? null : this.#check());
  }

  #check(): RegistryError | null {
    this.#checked = true;
    const head = Buffer.concat(this.#head);
    if (head.length >= tarBlockSize && head.subarray(ustarMagicOffset, ustarMagicOffset + 5).toString('latin1') === 'ustar') return null;
    return new RegistryError('BLOB_UPLOAD_INVALID', `${this.#what} is not a tar archive (no ustar header in its first block)`);
  }
}

/** True when `head` starts like a gzip stream (RFC 1952 magic bytes). */
export function isGzip(head: Uint8Array): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/**
 * Failures of the gzip or tar format itself become a client error naming
 * `what`; RegistryErrors and I/O failures pass through.
 */
export function archiveError(error: unknown, what: string): unknown {
  if (error instanceof RegistryError) return error;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new RegistryError('BLOB_UPLOAD_INVALID', `${what} is not a gzip-compressed tar (.tgz): ${(error as Error).message}`, { cause: error });
  }
  if (error instanceof Error && /tar|header|Unexpected end/i.test(error.message)) {
    return new RegistryError('BLOB_UPLOAD_INVALID', `${what} is not a valid tar archive: ${error.message}`, { cause: error });
  }
  return error;
}
