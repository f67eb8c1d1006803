import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { RegistryError } from '../../errors/registry-error.ts';
import { algorithmOf, hexOf, tryParseDigest, type Digest } from '../../oci/digest.ts';
import type { BlobStore, ByteRange, StoredItem, UploadArea } from '../blob-store.ts';
import { guardClient } from './guarded-client.ts';
import { leaseTiming, MultipartLeases } from '../../io/s3/multipart-leases.ts';
import { s3Limits } from './part-plan.ts';
import { createS3Client, isNotFound, isNotImplemented, listObjects, normalizePrefix, type S3Location } from '../../io/s3/s3-client.ts';
import { S3UploadArea } from './s3-uploads.ts';

export interface S3BlobStoreOptions extends S3Location {
  /** Multipart part size (at least 5 MiB); each upload in flight buffers up to two parts. */
  partSize: number;
  /** How long a presigned blob URL stays valid, in milliseconds. */
  presignExpiry: number;
  /** Longest wait for an answer (response headers) before the store counts as unavailable, in milliseconds; 0 for none. */
  requestTimeout?: number;
  /** Multipart uploads older than this (milliseconds) are aborted; 0 leaves them to a bucket lifecycle rule. */
  multipartExpiry: number;
  /** Told about background failures (the multipart sweep). */
  onBackgroundError?: (message: string, error: unknown) => void;
}

/**
 * Blobs as objects `<prefix>blobs/<algorithm>/<2 hex>/<hex>` in an
 * S3-compatible bucket; uploads under `<prefix>uploads/` (s3-uploads.ts).
 * Every replica sees the same bytes; clients can fetch blobs straight
 * from the store through presigned URLs.
 */
export class S3BlobStore implements BlobStore {
  readonly uploads: UploadArea;
  /** S3's part minimum: chunks this large are assembled inside the store without passing through Berth. */
  readonly chunkMinLength = s3Limits.minPartBytes;
  readonly #client: S3Client;
  readonly #options: S3BlobStoreOptions;
  readonly #prefix: string;
  readonly #leases: MultipartLeases;
  #sweeper: NodeJS.Timeout | undefined;

  private constructor(client: S3Client, options: S3BlobStoreOptions) {
    this.#client = client;
    this.#options = options;
    this.#prefix = normalizePrefix(options.prefix);
    this.#leases = new MultipartLeases(client, options.bucket, `${this.#prefix}multipart-leases/`, leaseTiming(options.multipartExpiry));
    this.uploads = new S3UploadArea({
      leases: this.#leases,
      client,
      bucket: options.bucket,
      root: `${this.#prefix}uploads/`,
      blobKey: (digest) => this.#key(digest),
      partBytes: Math.max(options.partSize, s3Limits.minPartBytes),
    });
  }

  /** Connects and checks that the bucket is there and reachable with these credentials. */
  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const client = createS3Client(options);
    guardClient(client, options.requestTimeout ?? 30_000);
    try {
      await client.send(new HeadBucketCommand({ Bucket: options.bucket }));
    } catch (error) {
      client.destroy();
      throw new Error(`cannot use S3 bucket "${options.bucket}": ${describe(error)}`, { cause: error });
    }
    const store = new S3BlobStore(client, options);
    store.#startSweeper();
    return store;
  }

  /** Throws when the bucket cannot be reached (readiness). */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.#client.send(new HeadBucketCommand({ Bucket: this.#options.bucket }), sendOptions(signal));
  }

  async stat(digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    try {
      const head = await this.#client.send(new HeadObjectCommand({ Bucket: this.#options.bucket, Key: this.#key(digest) }), sendOptions(signal));
      return head.ContentLength;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    try {
      const response = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#options.bucket,
          Key: this.#key(digest),
          ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }),
        }),
        sendOptions(signal),
      );
      const body = response.Body as Readable;
      // Some S3-compatible servers answer "bytes=0-0" with the whole object;
      // more bytes than the range would corrupt the HTTP response.
      return range === undefined ? body : limitBytes(body, range.end - range.start + 1);
    } catch (error) {
      if (isNotFound(error)) throw new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest } });
      throw error;
    }
  }

  async delete(digest: Digest): Promise<void> {
    await this.#client.send(new DeleteObjectCommand({ Bucket: this.#options.bucket, Key: this.#key(digest) }));
  }

  async redirectUrl(digest: Digest): Promise<string | undefined> {
    const command = new GetObjectCommand({ Bucket: this.#options.bucket, Key: this.#key(digest) });
    return getSignedUrl(this.#client, command, { expiresIn: Math.max(1, Math.round(this.#options.presignExpiry / 1000)) });
  }

  async *list(): AsyncIterable<StoredItem<Digest>> {
    const root = `${this.#prefix}blobs/`;
    for await (const item of listObjects(this.#client, this.#options.bucket, root)) {
      const [algorithm, shard, hex, ...rest] = (item.Key ?? '').slice(root.length).split('/');
      if (rest.length > 0 || hex === undefined || shard !== hex.slice(0, 2)) continue;
      const digest = tryParseDigest(`${algorithm}:${hex}`);
      if (digest !== undefined) yield { key: digest, modifiedAt: item.LastModified ?? new Date(0) };
    }
  }

  /**
   * Aborts multipart uploads under the prefix started before `cutoff`: what
   * appends and commits leave when their process dies mid-way. An upload
   * that a live process still writes holds a lease (src/io/s3/multipart-leases.ts) and
   * is never aborted, however old. Resolves to how many were aborted; throws
   * when the store cannot list them.
   */
  async sweepMultipartUploads(cutoff: Date): Promise<number> {
    const bucket = this.#options.bucket;
    // Uploads first, leases second: a lease is written before its upload
    // starts, so every upload listed here has its lease by the time the
    // leases are listed. The other order would miss an upload that started
    // between the two listings, and abort it.
    const expired: { key: string; uploadId: string }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.#client.send(
        new ListMultipartUploadsCommand({
          Bucket: bucket,
          Prefix: this.#prefix,
          ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
          ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (upload.Initiated === undefined || upload.Initiated >= cutoff || upload.Key === undefined || upload.UploadId === undefined) continue;
        expired.push({ key: upload.Key, uploadId: upload.UploadId });
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    const leased = await this.#leases.leasedKeys();
    let aborted = 0;
    for (const upload of expired) {
      if (leased.has(upload.key)) continue;
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.key, UploadId: upload.uploadId })).then(
        () => aborted++,
        (error: unknown) => {
          if (!isNotFound(error)) throw error;
        },
      );
    }
    return aborted;
  }

  async close(): Promise<void> {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#client.destroy();
  }

  #startSweeper(): void {
    const expiry = this.#options.multipartExpiry;
    if (expiry <= 0) return;
    // Every replica sweeps; aborting is idempotent, so they need not agree on who does.
    const interval = Math.min(expiry / 4, 60 * 60 * 1000);
    this.#sweeper = setInterval(() => {
      this.sweepMultipartUploads(new Date(Date.now() - expiry)).catch((error: unknown) => {
        if (isNotImplemented(error)) {
          clearInterval(this.#sweeper);
          this.#options.onBackgroundError?.('the S3 store cannot list multipart uploads; rely on a bucket lifecycle rule to expire them', error);
          return;
        }
        this.#options.onBackgroundError?.('sweeping expired S3 multipart uploads failed', error);
      });
    }, interval);
    this.#sweeper.unref();
  }

  #key(digest: Digest): string {
    const hex = hexOf(digest);
    return `${this.#prefix}blobs/${algorithmOf(digest)}/${hex.slice(0, 2)}/${hex}`;
  }
}

/** The first `length` bytes of `source`; the rest is not read. */
function limitBytes(source: Readable, length: number): Readable {
  return Readable.from(
    (async function* () {
      let left = length;
      for await (const chunk of source as AsyncIterable<Buffer>) {
        if (chunk.length >= left) {
          yield chunk.subarray(0, left);
          return;
        }
        left -= chunk.length;
        yield chunk;
      }
    })(),
    { objectMode: false },
  );
}

function sendOptions(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal === undefined ? {} : { abortSignal: signal };
}

function describe(error: unknown): string {
  if (isNotFound(error)) return 'no such bucket';
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (status === 403) return 'access denied (check the credentials)';
  return error instanceof Error ? error.message : String(error);
}
