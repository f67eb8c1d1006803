import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { finishDigest, type Digest } from '../oci/digest.ts';
import { ArchiveFormatError, compressionOf, digestOfBlobPath, type ArchiveContents, type BlobLocation, type DescribedFile } from './archive-contents.ts';
import type { TarEntry } from './tar-entries.ts';

/** Hashing reads the archive in slices of this size: bounded memory whatever the layer size. */
const hashSliceBytes = 1024 * 1024;

/** An uncompressed tar read in place through an open file handle. */
export class TarContents implements ArchiveContents {
  readonly #handle: FileHandle;
  readonly #entries: Map<string, TarEntry>;
  readonly #described = new Map<string, Promise<DescribedFile>>();

  constructor(handle: FileHandle, entries: Map<string, TarEntry>) {
    this.#handle = handle;
    this.#entries = entries;
  }

  has(path: string): boolean {
    return this.#entries.has(path);
  }

  async readFile(path: string, limit: number): Promise<Buffer> {
    const entry = this.#entry(path);
    if (entry.size > limit) throw new ArchiveFormatError(`${path} is ${entry.size} bytes, more than the ${limit} allowed`);
    return this.#read(entry.offset, entry.size);
  }

  /** Layers named by path (Docker archives) are hashed once, in bounded slices. */
  describeFile(path: string): Promise<DescribedFile> {
    let described = this.#described.get(path);
    if (described === undefined) {
      described = this.#describe(this.#entry(path));
      this.#described.set(path, described);
    }
    return described;
  }

  blobs(): Map<Digest, BlobLocation> {
    const blobs = new Map<Digest, BlobLocation>();
    for (const [path, entry] of this.#entries) {
      const digest = digestOfBlobPath(path);
      if (digest !== undefined) blobs.set(digest, { kind: 'range', offset: entry.offset, size: entry.size });
    }
    return blobs;
  }

  async #describe(entry: TarEntry): Promise<DescribedFile> {
    const hash = createHash('sha256');
    const slice = Buffer.alloc(Math.min(hashSliceBytes, Math.max(entry.size, 1)));
    let magic = Buffer.alloc(0);
    for (let done = 0; done < entry.size; ) {
      const length = Math.min(slice.length, entry.size - done);
      const { bytesRead } = await this.#handle.read(slice, 0, length, entry.offset + done);
      if (bytesRead === 0) throw new ArchiveFormatError(`archive ends inside an entry at byte ${entry.offset + done}`);
      if (done === 0) magic = Buffer.from(slice.subarray(0, Math.min(bytesRead, 4)));
      hash.update(slice.subarray(0, bytesRead));
      done += bytesRead;
    }
    return {
      digest: finishDigest(hash, 'sha256'),
      size: entry.size,
      location: { kind: 'range', offset: entry.offset, size: entry.size },
      compression: compressionOf(magic),
    };
  }

  #entry(path: string): TarEntry {
    const entry = this.#entries.get(path);
    if (entry === undefined) throw new ArchiveFormatError(`${path} is missing from the archive`);
    return entry;
  }

  async #read(offset: number, size: number): Promise<Buffer> {
    const buffer = Buffer.alloc(size);
    for (let filled = 0; filled < size; ) {
      const { bytesRead } = await this.#handle.read(buffer, filled, size - filled, offset + filled);
      if (bytesRead === 0) throw new ArchiveFormatError(`archive ends inside an entry at byte ${offset + filled}`);
      filled += bytesRead;
    }
    return buffer;
  }
}
