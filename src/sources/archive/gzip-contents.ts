import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import type { Digest } from '../../oci/digest.ts';
import { ArchiveFormatError, compressionOf, digestOfBlobPath, type ArchiveContents, type BlobLocation, type DescribedFile } from '../../archives/archive-contents.ts';
import type { IndexOptions } from './archive-index.ts';
import { normalizeEntryPath } from '../../archives/tar-entries.ts';

/** Metadata files read into memory; every other entry is stored as a blob. */
const metadataFiles = new Set(['oci-layout', 'index.json', 'manifest.json', 'repositories']);

interface StoredFile {
  digest: Digest;
  size: number;
}

/**
 * Streams a gzip-compressed archive once, storing every file entry in the
 * BlobStore (verified against its name under `blobs/`, hashed otherwise)
 * and keeping the small metadata files in memory. Blobs already stored are
 * skipped. A truncated or damaged stream fails the whole extraction.
 */
export async function extractGzipArchive(handle: FileHandle, store: BlobStore, options: IndexOptions): Promise<GzipContents> {
  const files = new Map<string, Buffer>();
  const stored = new Map<string, StoredFile>();
  const links = new Map<string, string>();
  const entries = extract();
  const source = handle.createReadStream({ autoClose: false, start: 0 });
  const feeding = pipeline(source, createGunzip(), entries).catch((cause: unknown) => {
    throw new ArchiveFormatError(`the gzip stream cannot be read: ${(cause as Error).message}`, { cause });
  });
  // Awaited below; until then a failure must not count as unhandled.
  feeding.catch(() => undefined);
  try {
    for await (const entry of entries) {
      const { header } = entry;
      const path = normalizeEntryPath(header.name);
      if (path !== undefined && (header.type === 'link' || header.type === 'symlink')) {
        const target = header.type === 'link' ? header.linkname : posix.join(posix.dirname(path), header.linkname);
        const normalized = normalizeEntryPath(target);
        if (normalized !== undefined) links.set(path, normalized);
      }
      if (path === undefined || (header.type !== 'file' && header.type !== 'contiguous-file')) {
        await drain(entry);
      } else if (metadataFiles.has(path)) {
        files.set(path, await readBounded(entry, options.maxManifestBytes, path));
      } else {
        stored.set(path, await storeEntry(store, Readable.from(entry, { objectMode: false }), path, header.size, options.signal));
      }
    }
    await feeding;
  } catch (error) {
    source.destroy();
    await feeding.catch(() => undefined);
    throw error instanceof ArchiveFormatError ? error : new ArchiveFormatError(`the archive cannot be extracted: ${(error as Error).message}`, { cause: error });
  }
  for (const [path, target] of links) {
    const file = stored.get(target);
    if (file !== undefined) stored.set(path, file);
  }
  return new GzipContents(files, stored, store);
}

async function storeEntry(store: BlobStore, entry: Readable, path: string, size: number, signal: AbortSignal | undefined): Promise<StoredFile> {
  const expected = digestOfBlobPath(path);
  if (expected !== undefined && (await store.stat(expected, signal)) === size) {
    await drain(entry);
    return { digest: expected, size };
  }
  const options = { ...(expected === undefined ? {} : { expected }), ...(signal === undefined ? {} : { signal }) };
  return writeBlob(store, entry, options);
}

async function drain(entry: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of entry);
}

async function readBounded(entry: AsyncIterable<unknown>, limit: number, path: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of entry) {
    length += (chunk as Buffer).length;
    if (length > limit) throw new ArchiveFormatError(`${path} is more than the ${limit} bytes allowed`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A gzip archive after extraction: metadata in memory, everything else in the BlobStore. */
class GzipContents implements ArchiveContents {
  readonly #files: Map<string, Buffer>;
  readonly #stored: Map<string, StoredFile>;
  readonly #store: BlobStore;

  constructor(files: Map<string, Buffer>, stored: Map<string, StoredFile>, store: BlobStore) {
    this.#files = files;
    this.#stored = stored;
    this.#store = store;
  }

  has(path: string): boolean {
    return this.#files.has(path) || this.#stored.has(path);
  }

  async readFile(path: string, limit: number): Promise<Buffer> {
    const file = this.#files.get(path);
    if (file !== undefined) return file;
    const stored = this.#stored.get(path);
    if (stored === undefined) throw new ArchiveFormatError(`${path} is missing from the archive`);
    if (stored.size > limit) throw new ArchiveFormatError(`${path} is ${stored.size} bytes, more than the ${limit} allowed`);
    return readBounded(await this.#store.open(stored.digest), limit, path);
  }

  async describeFile(path: string): Promise<DescribedFile> {
    const stored = this.#stored.get(path);
    if (stored === undefined) throw new ArchiveFormatError(`${path} is missing from the archive`);
    const magic = stored.size === 0 ? Buffer.alloc(0) : await readBounded(await this.#store.open(stored.digest, { start: 0, end: Math.min(stored.size, 4) - 1 }), 4, path);
    return { digest: stored.digest, size: stored.size, location: { kind: 'store', size: stored.size }, compression: compressionOf(magic) };
  }

  blobs(): Map<Digest, BlobLocation> {
    const blobs = new Map<Digest, BlobLocation>();
    for (const [path, file] of this.#stored) {
      if (digestOfBlobPath(path) === file.digest) {
        blobs.set(file.digest, { kind: 'store', size: file.size });
      }
    }
    return blobs;
  }
}
