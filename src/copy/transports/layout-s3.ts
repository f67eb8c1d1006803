import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { readAtMost } from '../../io/bounded-read.ts';
import { checkDigest } from '../../io/digest-check.ts';
import { MeteredStream, through } from '../../io/metered-stream.ts';
import { blobContentType, writeObject } from '../../io/s3/object-writer.ts';
import { isNotFound, type S3Connection } from '../../io/s3/s3-client.ts';
import { algorithmOf, finishDigest, type Digest } from '../../oci/digest.ts';
import type { BlobOpener } from '../image-store.ts';
import type { LayoutStorage } from './layout-storage.ts';

/** How `s3://` locations reach their bucket; without credentials the AWS SDK finds them as usual (environment, profile, role). */
export type S3Options = S3Connection;

/** Parts of at least this size, larger for blobs that would need more than S3's 10,000 parts. */
const minPartBytes = 16 * 1024 * 1024;
const maxParts = 10_000;

/**
 * An OCI layout inside a bucket, under a key prefix. Blobs go up through
 * the shared object writer, which completes them only after the bytes
 * hashed to the expected digest, so a blob key exists only with the right
 * content.
 */
export class S3Storage implements LayoutStorage {
  readonly description: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #ownsClient: boolean;

  constructor(client: S3Client, bucket: string, prefix: string, options: { ownsClient?: boolean } = {}) {
    this.#client = client;
    this.#bucket = bucket;
    this.#prefix = prefix === '' ? '' : `${prefix.replace(/\/+$/, '')}/`;
    this.#ownsClient = options.ownsClient ?? false;
    this.description = `s3://${bucket}/${this.#prefix}`;
  }

  async stat(path: string, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(path) }), optionsOf(signal));
      return head.ContentLength;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async read(path: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    try {
      const object = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(path), ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }) }),
        optionsOf(signal),
      );
      return object.Body as Readable;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readSmall(path: string, limit: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const stream = await this.read(path, undefined, signal);
    if (stream === undefined) return undefined;
    return readAtMost(stream, limit, () => new RegistryError('SIZE_INVALID', `${this.description}${path} is larger than ${limit} bytes`));
  }

  async writeBlob(path: string, open: BlobOpener, expected: { digest: Digest; size: number }, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void> {
    const algorithm = algorithmOf(expected.digest);
    const hash = createHash(algorithm);
    const metered = new MeteredStream(hash, expected.size);
    if (onProgress !== undefined) metered.on('data', () => onProgress(metered.bytes));
    const verify = () => checkDigest(expected.digest, finishDigest(hash, algorithm), (actual) => `${expected.digest}: the source sent content with digest ${actual}`);
    const target = { client: this.#client, bucket: this.#bucket, key: this.#key(path) };
    const partBytes = Math.max(minPartBytes, Math.ceil(expected.size / maxParts));
    const written = await writeObject(target, through(await open(), metered), partBytes, signal, verify);
    if (written > 0) return;
    // An empty stream writes nothing; an empty blob still needs its key.
    verify();
    await this.#client.send(
      new PutObjectCommand({ Bucket: target.bucket, Key: target.key, Body: new Uint8Array(), ContentLength: 0, ContentType: blobContentType }),
      optionsOf(signal),
    );
  }

  async writeSmall(path: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#client.send(
      new PutObjectCommand({ Bucket: this.#bucket, Key: this.#key(path), Body: bytes, ContentLength: bytes.byteLength, ContentType: 'application/json' }),
      optionsOf(signal),
    );
  }

  async close(): Promise<void> {
    if (this.#ownsClient) this.#client.destroy();
  }

  #key(path: string): string {
    return this.#prefix + path;
  }
}

function optionsOf(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}
