import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { BlobOpener } from '../image-store.ts';

/**
 * The files of an OCI image layout on a dumb store (a directory, an S3
 * bucket): paths are relative to the layout's root, `/`-separated.
 */
export interface LayoutStorage {
  readonly description: string;
  /** Size of a file, or undefined when it does not exist. */
  stat(path: string, signal?: AbortSignal): Promise<number | undefined>;
  /** Streams a file or the inclusive range of it; undefined when it does not exist. */
  read(path: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined>;
  /** A small file whole (index.json, manifests), or undefined when absent; larger than `limit` is an error. */
  readSmall(path: string, limit: number, signal?: AbortSignal): Promise<Buffer | undefined>;
  /**
   * Writes a blob so that it becomes visible only complete and matching
   * `expected` (digest and size); otherwise nothing is left behind.
   */
  writeBlob(path: string, open: BlobOpener, expected: { digest: Digest; size: number }, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void>;
  /** Replaces a small file atomically. */
  writeSmall(path: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void>;
  close?(): Promise<void>;
  /** For a layout that lives in a file or directory: which one, when it does not exist at all (undefined when it does). */
  missing?(signal?: AbortSignal): Promise<'file' | 'directory' | undefined>;
}
