import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Digest } from '../../oci/digest.ts';
import { uploadIdPattern, type StoredItem, type UploadArea } from '../blob-store.ts';
import type { MultipartLeases } from '../../io/s3/multipart-leases.ts';
import { abortMultipart, blobContentType, writeObject, type ObjectTarget } from '../../io/s3/object-writer.ts';
import { planParts, s3Limits, type Part, type Piece } from './part-plan.ts';
import { readPieces } from './piece-reader.ts';
import { isNotFound, isNotImplemented, listObjects } from '../../io/s3/s3-client.ts';
import { resolveChain, type Segment } from './segments.ts';

const markerName = 'started';
const segmentPattern = /^(\d{16})\.([0-9a-f]+)$/;
const deleteBatch = 1000;
/** Parts of one commit uploaded or copied at once. */
const partConcurrency = 4;

export interface S3UploadSettings {
  client: S3Client;
  bucket: string;
  /** Key prefix of all uploads, ending in a slash. */
  root: string;
  blobKey(digest: Digest): string;
  /** Part size for multipart writes, and for parts gathered from small chunks. */
  partBytes: number;
  /** Keeps the sweep away from multipart uploads in progress. */
  leases?: MultipartLeases | undefined;
}

/**
 * Uploads under `<root><id>/`: a marker object saying the upload exists,
 * and one object per append (a segment) named by its offset. Nothing lives
 * in the process, so any replica continues any upload. Commit assembles
 * the segments inside the store: one segment is copied, several become a
 * multipart upload (see part-plan.ts).
 */
export class S3UploadArea implements UploadArea {
  readonly #settings: S3UploadSettings;
  /** Cleared when the store answers UploadPartCopy with NotImplemented; parts are then streamed. */
  #partCopy = true;

  constructor(settings: S3UploadSettings) {
    this.#settings = settings;
  }

  async create(id: string): Promise<void> {
    if (!uploadIdPattern.test(id)) throw unknownUpload(id);
    const { client, bucket } = this.#settings;
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: this.#key(id, markerName), Body: Buffer.alloc(0), ContentLength: 0 }));
  }

  async append(id: string, offset: number, data: Readable, signal?: AbortSignal): Promise<number> {
    resolveChain(await this.#segments(id, signal), offset);
    const name = `${String(offset).padStart(16, '0')}.${randomBytes(8).toString('hex')}`;
    const { client, bucket, partBytes, leases } = this.#settings;
    return offset + (await writeObject({ client, bucket, key: this.#key(id, name), leases }, data, partBytes, signal));
  }

  async read(id: string, signal?: AbortSignal, size?: number): Promise<Readable> {
    const chain = resolveChain(await this.#segments(id, signal), size);
    return Readable.from(
      this.#concatenate(
        chain.map((segment) => ({ key: segment.key, start: 0, end: segment.length - 1 })),
        signal,
      ),
    );
  }

  async commit(id: string, digest: Digest, size?: number): Promise<void> {
    const chain = resolveChain(await this.#segments(id), size);
    const { client, bucket, blobKey } = this.#settings;
    const target = { client, bucket, key: blobKey(digest) };
    const exists = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: target.key })).then(
      () => true,
      (error: unknown) => {
        if (isNotFound(error)) return false;
        throw error;
      },
    );
    if (!exists) await this.#assemble(chain, target);
    await this.remove(id);
  }

  async remove(id: string): Promise<void> {
    if (!uploadIdPattern.test(id)) return;
    const { client, bucket } = this.#settings;
    let keys: string[] = [];
    const flush = async () => {
      if (keys.length === 0) return;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys.map((key) => ({ Key: key })), Quiet: true } }));
      keys = [];
    };
    for await (const item of listObjects(client, bucket, this.#key(id, ''))) {
      if (item.Key !== undefined) keys.push(item.Key);
      if (keys.length === deleteBatch) await flush();
    }
    await flush();
  }

  async *list(): AsyncIterable<StoredItem<string>> {
    const { client, bucket, root } = this.#settings;
    let current: StoredItem<string> | undefined;
    // Keys come sorted, so each upload's objects are together; its last change is the newest of them.
    for await (const item of listObjects(client, bucket, root)) {
      const id = item.Key?.slice(root.length).split('/', 1)[0];
      if (id === undefined || id === '') continue;
      const modifiedAt = item.LastModified ?? new Date(0);
      if (current !== undefined && current.key !== id) {
        yield current;
        current = undefined;
      }
      if (current === undefined) current = { key: id, modifiedAt };
      else if (modifiedAt > current.modifiedAt) current.modifiedAt = modifiedAt;
    }
    if (current !== undefined) yield current;
  }

  async #segments(id: string, signal?: AbortSignal): Promise<Segment[]> {
    if (!uploadIdPattern.test(id)) throw unknownUpload(id);
    const { client, bucket } = this.#settings;
    const prefix = this.#key(id, '');
    let exists = false;
    const segments: Segment[] = [];
    for await (const item of listObjects(client, bucket, prefix, signal)) {
      const name = item.Key?.slice(prefix.length) ?? '';
      if (name === markerName) exists = true;
      const match = segmentPattern.exec(name);
      if (match === null) continue;
      segments.push({ key: item.Key as string, offset: Number(match[1]), length: item.Size ?? 0, etag: item.ETag ?? '' });
    }
    if (!exists) throw unknownUpload(id);
    return segments;
  }

  /** Writes the chain as one object, atomically: it appears only when complete. */
  async #assemble(chain: readonly Segment[], target: ObjectTarget): Promise<void> {
    const { client, bucket } = this.#settings;
    const total = chain.reduce((sum, segment) => sum + segment.length, 0);
    const only = chain[0];
    if (only === undefined) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: target.key, Body: Buffer.alloc(0), ContentLength: 0, ContentType: blobContentType }));
    } else if (chain.length === 1 && total <= s3Limits.maxCopyObjectBytes) {
      await client.send(
        new CopyObjectCommand({
          Bucket: bucket,
          Key: target.key,
          CopySource: copySource(bucket, only.key),
          MetadataDirective: 'REPLACE',
          ContentType: blobContentType,
        }),
      );
    } else {
      await this.#assembleParts(chain, target);
    }
  }

  async #assembleParts(chain: readonly Segment[], target: ObjectTarget): Promise<void> {
    const { client, bucket, partBytes, leases } = this.#settings;
    const copy = this.#partCopy;
    const plan = planParts(chain, { streamPartBytes: partBytes, copy });
    // The lease comes first, so that no sweep ever sees this upload without one.
    const release = await leases?.hold(target.key);
    let uploadId: string | undefined;
    try {
      const created = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: target.key, ContentType: blobContentType }));
      const id = created.UploadId as string;
      uploadId = id;
      const etags = await inOrder(plan, partConcurrency, (part, index) => this.#uploadPart(part, target.key, id, index + 1));
      const completed: CompletedPart[] = etags.map((etag, index) => ({ PartNumber: index + 1, ETag: etag }));
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: target.key, UploadId: uploadId, MultipartUpload: { Parts: completed } }));
    } catch (error) {
      if (uploadId !== undefined) await abortMultipart(target, uploadId);
      if (copy && isNotImplemented(error)) {
        this.#partCopy = false;
        return this.#assembleParts(chain, target);
      }
      throw error;
    } finally {
      await release?.();
    }
  }

  async #uploadPart(part: Part, key: string, uploadId: string, partNumber: number): Promise<string | undefined> {
    const { client, bucket } = this.#settings;
    if (part.kind === 'copy') {
      const copied = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          CopySource: copySource(bucket, part.piece.key),
          CopySourceRange: `bytes=${part.piece.start}-${part.piece.end}`,
        }),
      );
      return copied.CopyPartResult?.ETag;
    }
    const body = Readable.from(this.#concatenate(part.pieces));
    const uploaded = await client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: part.length }));
    return uploaded.ETag;
  }

  /** The bytes of `pieces` one after the other, small ones fetched several at a time (piece-reader.ts). */
  #concatenate(pieces: readonly Piece[], signal?: AbortSignal): AsyncGenerator<Buffer> {
    const { client, bucket } = this.#settings;
    return readPieces(pieces, async (piece) => {
      try {
        const response = await client.send(
          new GetObjectCommand({ Bucket: bucket, Key: piece.key, Range: `bytes=${piece.start}-${piece.end}` }),
          signal === undefined ? {} : { abortSignal: signal },
        );
        return response.Body as Readable;
      } catch (error) {
        // The upload was removed (finished or cancelled elsewhere) while being read.
        if (isNotFound(error)) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', 'the upload was removed while being read', { cause: error });
        throw error;
      }
    });
  }

  #key(id: string, name: string): string {
    return `${this.#settings.root}${id}/${name}`;
  }
}

/** `task` over every item, at most `limit` at once; results in the items' order. The first failure rejects once all started tasks settle. */
async function inOrder<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const index = next++;
      try {
        results[index] = await task(items[index] as T, index);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const rejected = settled.find((result) => result.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
  return results;
}

function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function unknownUpload(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id: id.slice(0, 128) } });
}
