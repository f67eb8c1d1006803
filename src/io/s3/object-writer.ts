import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { MultipartLeases } from './multipart-leases.ts';

export const blobContentType = 'application/octet-stream';

/** Where one object goes. */
export interface ObjectTarget {
  client: S3Client;
  bucket: string;
  key: string;
  /** Marks multipart uploads in progress so that the sweep leaves them alone. */
  leases?: MultipartLeases | undefined;
}

/**
 * Stores a stream of unknown length as one object: a single PUT when it
 * fits in one part, a multipart upload otherwise (reading the next part
 * while the previous one uploads, so at most two parts are in memory). The
 * object appears only when complete; on any failure nothing is left but,
 * where the store cannot abort, parts that its expiry removes. Writes
 * nothing for an empty stream. Resolves to the number of bytes written.
 * `beforeComplete` runs once all bytes are read and before the object
 * appears; what it throws leaves no object (a digest check, say).
 */
export async function writeObject(target: ObjectTarget, source: Readable, partBytes: number, signal?: AbortSignal, beforeComplete?: () => void): Promise<number> {
  signal?.throwIfAborted();
  const parts = new PartReader(source, partBytes);
  const first = await parts.next();
  if (first === undefined) return 0;
  const options = signal === undefined ? {} : { abortSignal: signal };
  const { client, bucket, key } = target;
  if (first.length < partBytes) {
    beforeComplete?.();
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: first, ContentLength: first.length, ContentType: blobContentType }), options);
    return first.length;
  }
  // The lease comes first, so that no sweep ever sees this upload without one.
  const release = await target.leases?.hold(key);
  let uploadId: string;
  try {
    const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: blobContentType }), options);
    uploadId = created.UploadId as string;
  } catch (error) {
    await release?.();
    throw error;
  }
  const completed: CompletedPart[] = [];
  let written = 0;
  try {
    let current: Buffer | undefined = first;
    while (current !== undefined) {
      const partNumber = completed.length + 1;
      const body: Buffer = current;
      const uploading = client.send(
        new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length }),
        options,
      );
      // Both settle before any failure is handled, so no part lands after the abort.
      const [uploaded, next] = await Promise.allSettled([uploading, parts.next()]);
      if (uploaded.status === 'rejected') throw uploaded.reason;
      if (next.status === 'rejected') throw next.reason;
      completed.push({ PartNumber: partNumber, ETag: uploaded.value.ETag });
      written += body.length;
      current = next.value;
    }
    beforeComplete?.();
    await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: completed } }), options);
    return written;
  } catch (error) {
    await abortMultipart(target, uploadId);
    throw error;
  } finally {
    await release?.();
  }
}

/** Drops a multipart upload's parts; stores that cannot abort leave them to their expiry. */
export async function abortMultipart(target: ObjectTarget, uploadId: string): Promise<void> {
  await target.client.send(new AbortMultipartUploadCommand({ Bucket: target.bucket, Key: target.key, UploadId: uploadId })).catch(() => undefined);
}

/** Cuts a stream into buffers of exactly `partBytes` (the last one shorter). */
class PartReader {
  readonly #iterator: AsyncIterator<Buffer>;
  readonly #partBytes: number;
  #leftover: Buffer | undefined;
  #done = false;

  constructor(source: Readable, partBytes: number) {
    this.#iterator = source[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.#partBytes = partBytes;
  }

  async next(): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let length = 0;
    if (this.#leftover !== undefined) {
      chunks.push(this.#leftover);
      length = this.#leftover.length;
      this.#leftover = undefined;
    }
    while (length < this.#partBytes && !this.#done) {
      const result = await this.#iterator.next();
      if (result.done === true) {
        this.#done = true;
        break;
      }
      chunks.push(result.value);
      length += result.value.length;
    }
    if (length === 0) return undefined;
    const joined = Buffer.concat(chunks, length);
    if (length <= this.#partBytes) return joined;
    this.#leftover = joined.subarray(this.#partBytes);
    return joined.subarray(0, this.#partBytes);
  }
}
