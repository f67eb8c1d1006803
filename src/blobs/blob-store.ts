import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.ts';

/** An inclusive byte range, as HTTP states it. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Bytes that lie in a local file: whoever receives it sends
 * `[start, end]` (inclusive) and closes the handle. Lets the HTTP layer send
 * with reused buffers instead of a stream allocating one per chunk.
 */
export interface FileRegion {
  handle: FileHandle;
  start: number;
  end: number;
}

/** One stored item, for collectors that must find what metadata forgot. */
export interface StoredItem<Key> {
  key: Key;
  modifiedAt: Date;
}

/**
 * Content-addressed bytes, one copy per digest for the whole registry.
 * Knows nothing of repositories: which repository may read a blob is the
 * MetaStore's business. Every implementation passes test/blobs/contract.ts.
 */
export interface BlobStore {
  /** Size of a stored blob, or undefined when it is not stored. */
  stat(digest: Digest, signal?: AbortSignal): Promise<number | undefined>;
  /** Streams a stored blob, or the inclusive range of it. Throws BLOB_UNKNOWN. */
  open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  /** The blob's bytes as a region of a local file, for drivers that keep files. Throws BLOB_UNKNOWN. */
  openRegion?(digest: Digest, range?: ByteRange): Promise<FileRegion>;
  /** Removes a blob's bytes; a missing blob is not an error. */
  delete(digest: Digest): Promise<void>;
  /** Where a client may fetch the blob directly (HTTP 307), when the driver can say. */
  redirectUrl?(digest: Digest): Promise<string | undefined>;
  /** Every stored blob, in no particular order (for GC of orphans). */
  list?(): AsyncIterable<StoredItem<Digest>>;
  readonly uploads: UploadArea;
  /** Throws when the store cannot be reached; cheap (readiness checks call it every second or two). */
  ping?(signal?: AbortSignal): Promise<void>;
  /** The smallest PATCH chunk the driver handles efficiently (advertised as OCI-Chunk-Min-Length). */
  readonly chunkMinLength: number;
  close?(): Promise<void>;
}

/** What an upload id may look like; anything else is an unknown upload (ids end up in paths and keys). */
export const uploadIdPattern = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Bytes of uploads in progress, addressed by session id. Appends are
 * positional: an append that fails leaves the upload as it was before it.
 */
export interface UploadArea {
  create(id: string): Promise<void>;
  /**
   * Writes `data` at `offset`, which must be the upload's current size, and
   * resolves to the new size. On any failure (including the stream erroring
   * mid-way) the upload is cut back to `offset` and the error rethrown.
   * Throws BLOB_UPLOAD_UNKNOWN when the upload does not exist.
   */
  append(id: string, offset: number, data: Readable, signal?: AbortSignal): Promise<number>;
  /**
   * Streams what the upload holds so far (to re-hash it). With `size` (the
   * size the MetaStore records), exactly that many bytes, or
   * BLOB_UPLOAD_INVALID when the upload holds fewer: bytes an append wrote
   * before its process died may follow them.
   */
  read(id: string, signal?: AbortSignal, size?: number): Promise<Readable>;
  /**
   * Makes the upload's bytes the blob `digest`, durably and atomically, and
   * removes the upload. When the blob already exists the upload is dropped.
   * The caller has verified the digest. With `size`, exactly that many
   * bytes become the blob (as for `read`).
   */
  commit(id: string, digest: Digest, size?: number): Promise<void>;
  /** Drops an upload; a missing one is not an error. */
  remove(id: string): Promise<void>;
  /** Every upload present, with its last change (for expiry). */
  list(): AsyncIterable<StoredItem<string>>;
}
