import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { sdkLogger } from '../../blobs/s3/s3-client.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { MeteredStream, through } from '../../registry/blob-writer.ts';
import { algorithmOf, finishDigest, type Digest } from '../../oci/digest.ts';
import type { BlobOpener } from '../image-store.ts';
import type { LayoutStorage } from './layout-storage.ts';

/** How `s3://` locations reach their bucket; the AWS SDK finds credentials as usual (environment, profile, role). */
export interface S3Options {
  /** An S3-compatible endpoint (MinIO, Ceph, s3rver); default: AWS. */
  endpoint?: string;
  region?: string;
  /** Bucket in the path instead of the host name, as most S3-compatible servers need. */
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Parts of this size; S3 allows up to 10,000, so blobs up to about 640 GiB. */
const partSize = 64 * 1024 * 1024;

export function createS3Client(options: S3Options): S3Client {
  const config: S3ClientConfig = {
    region: options.region ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
    // Checksums only where S3 requires them: S3-compatible servers often lack the newer ones.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The SDK's own messages would go to stderr, where copy's progress events go.
    logger: sdkLogger(undefined),
  };
  if (options.endpoint !== undefined) config.endpoint = options.endpoint;
  if (options.credentials !== undefined) config.credentials = options.credentials;
  return new S3Client(config);
}

/**
 * An OCI layout inside a bucket, under a key prefix. Blobs go up as
 * multipart uploads that are completed only after the bytes hashed to the
 * expected digest, so a blob key exists only with the right content.
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
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of stream) {
      total += (chunk as Buffer).length;
      if (total > limit) {
        stream.destroy();
        throw new RegistryError('SIZE_INVALID', `${this.description}${path} is larger than ${limit} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks);
  }

  async writeBlob(path: string, open: BlobOpener, expected: { digest: Digest; size: number }, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void> {
    const algorithm = algorithmOf(expected.digest);
    const hash = createHash(algorithm);
    const key = this.#key(path);
    const upload = await this.#client.send(new CreateMultipartUploadCommand({ Bucket: this.#bucket, Key: key, ContentType: 'application/octet-stream' }), optionsOf(signal));
    const uploadId = upload.UploadId as string;
    try {
      const parts: { ETag: string; PartNumber: number }[] = [];
      let offset = 0;
      // One part even for an empty blob: a multipart upload needs at least one.
      do {
        const end = Math.min(offset + partSize, expected.size) - 1;
        const length = end - offset + 1;
        const metered = new MeteredStream(hash, length);
        const base = offset;
        if (onProgress !== undefined) metered.on('data', () => onProgress(base + metered.bytes));
        const body = length === 0 ? Buffer.alloc(0) : through(await open({ start: offset, end }), metered);
        const part = await this.#client.send(
          new UploadPartCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId, PartNumber: parts.length + 1, Body: body, ContentLength: length }),
          optionsOf(signal),
        );
        parts.push({ ETag: part.ETag as string, PartNumber: parts.length + 1 });
        offset = end + 1;
      } while (offset < expected.size);
      const actual = finishDigest(hash, algorithm);
      if (actual !== expected.digest) {
        throw new RegistryError('DIGEST_INVALID', `${expected.digest}: the source sent content with digest ${actual}`, { detail: { expected: expected.digest, actual } });
      }
      await this.#client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        optionsOf(signal),
      );
    } catch (error) {
      await this.#client.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
      throw error;
    }
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

function isNotFound(error: unknown): boolean {
  const failure = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return failure.name === 'NotFound' || failure.name === 'NoSuchKey' || failure.$metadata?.httpStatusCode === 404;
}
