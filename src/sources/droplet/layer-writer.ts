import { createHash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { finishDigest } from '../../oci/digest.ts';
import { MeteredStream, through, writeBlob } from '../../registry/blob-writer.ts';
import type { StoredLayer } from './droplet-index.ts';

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
