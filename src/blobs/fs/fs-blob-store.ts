import { closeSync, createReadStream, fstatSync, ftruncateSync, mkdirSync, openSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RegistryError } from '../../errors/registry-error.ts';
import { algorithmOf, digestAlgorithms, hexOf, tryParseDigest, type Digest } from '../../oci/digest.ts';
import { uploadIdPattern, type BlobStore, type ByteRange, type FileRegion, type StoredItem, type UploadArea } from '../blob-store.ts';
import { fsyncFd, writeAt } from './positional-write.ts';

const readChunkBytes = 1024 * 1024;

/**
 * Blobs as files under `root/blobs/<algorithm>/<2 hex>/<hex>`; uploads as
 * files under `root/uploads`, on the same file system so that finishing an
 * upload is an fsync and a rename: a blob file exists only when complete.
 */
export class FsBlobStore implements BlobStore {
  readonly uploads: UploadArea;
  readonly chunkMinLength = 1;
  readonly #blobsDir: string;

  private constructor(root: string) {
    this.#blobsDir = join(root, 'blobs');
    this.uploads = new FsUploadArea(join(root, 'uploads'), (digest) => this.#path(digest));
  }

  static async open(root: string): Promise<FsBlobStore> {
    await mkdir(join(root, 'blobs'), { recursive: true });
    await mkdir(join(root, 'uploads'), { recursive: true });
    return new FsBlobStore(root);
  }

  async stat(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.#path(digest))).size;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async open(digest: Digest, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const { handle, start, end } = await this.openRegion(digest, range);
    // Bounding the stream by the region keeps a 10 KiB blob from costing a 1 MiB buffer.
    const options = { highWaterMark: readChunkBytes, ...(signal === undefined ? {} : { signal }) };
    return handle.createReadStream(end < start ? options : { ...options, start, end });
  }

  async openRegion(digest: Digest, range?: ByteRange): Promise<FileRegion> {
    let handle;
    try {
      handle = await open(this.#path(digest), 'r');
    } catch (error) {
      if (isNotFound(error)) throw new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest } });
      throw error;
    }
    if (range !== undefined) return { handle, ...range };
    try {
      return { handle, start: 0, end: (await handle.stat()).size - 1 };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async delete(digest: Digest): Promise<void> {
    await rm(this.#path(digest), { force: true });
  }

  async *list(): AsyncIterable<StoredItem<Digest>> {
    for (const algorithm of Object.keys(digestAlgorithms)) {
      const algorithmDir = join(this.#blobsDir, algorithm);
      for (const prefix of await readdirIfPresent(algorithmDir)) {
        for (const hex of await readdirIfPresent(join(algorithmDir, prefix))) {
          const digest = tryParseDigest(`${algorithm}:${hex}`);
          if (digest === undefined) continue;
          const info = await stat(join(algorithmDir, prefix, hex)).catch(() => undefined);
          if (info !== undefined) yield { key: digest, modifiedAt: info.mtime };
        }
      }
    }
  }

  #path(digest: Digest): string {
    const hex = hexOf(digest);
    return join(this.#blobsDir, algorithmOf(digest), hex.slice(0, 2), hex);
  }
}

class FsUploadArea implements UploadArea {
  readonly #dir: string;
  readonly #blobPath: (digest: Digest) => string;
  readonly #directories = new Set<string>();

  constructor(dir: string, blobPath: (digest: Digest) => string) {
    this.#dir = dir;
    this.#blobPath = blobPath;
  }

  // Opening an existing upload, sizing, cutting back and closing it are done
  // synchronously: each is a few microseconds in the kernel, while a
  // thread-pool round trip costs two context switches, which on a small
  // machine were a large part of a small push's time. Whatever may wait for
  // the disk or the journal (writes, fsync, creating and renaming files)
  // stays on the thread pool.

  async create(id: string): Promise<void> {
    const handle = await open(this.#path(id), 'wx');
    await handle.close();
  }

  async append(id: string, offset: number, data: Readable, signal?: AbortSignal): Promise<number> {
    const path = this.#path(id);
    const fd = this.#openUpload(id);
    try {
      const size = fstatSync(fd).size;
      if (size > offset) ftruncateSync(fd, offset);
      else if (size < offset) {
        throw new RegistryError('BLOB_UPLOAD_INVALID', `upload holds ${size} bytes, expected ${offset}`);
      }
      try {
        return offset + (await writeAt(fd, offset, data, signal));
      } catch (error) {
        cutBack(fd, offset);
        // Node's write errors carry no path; with it, a full disk's log line says where.
        if (error instanceof Error && !('path' in error)) Object.assign(error, { path });
        throw error;
      }
    } finally {
      closeSync(fd);
    }
  }

  async read(id: string, signal?: AbortSignal, size?: number): Promise<Readable> {
    const held = await this.#size(id);
    if (size !== undefined && held < size) throw shortUpload(id, held, size);
    const options = { highWaterMark: readChunkBytes, ...(signal === undefined ? {} : { signal }) };
    if (size === 0) return Readable.from([]);
    return createReadStream(this.#path(id), size === undefined ? options : { ...options, end: size - 1 });
  }

  async commit(id: string, digest: Digest, size?: number): Promise<void> {
    const source = this.#path(id);
    const target = this.#blobPath(digest);
    const fd = this.#openUpload(id);
    try {
      if (size !== undefined) {
        // Bytes past `size` were written by an append that never got recorded.
        const held = fstatSync(fd).size;
        if (held < size) throw shortUpload(id, held, size);
        if (held > size) ftruncateSync(fd, size);
      }
      await fsyncFd(fd);
    } finally {
      closeSync(fd);
    }
    const targetDir = join(target, '..');
    this.#ensureDirectory(targetDir);
    // Rename over an existing copy is safe: both hold the same verified bytes,
    // and readers holding the old file keep reading it.
    try {
      await rename(source, target);
    } catch (error) {
      if (!isNotFound(error) || !this.#directories.delete(targetDir)) throw error;
      // The directory was removed behind this process's back: make it again.
      this.#ensureDirectory(targetDir);
      await rename(source, target);
    }
    const directory = openSync(targetDir, 'r');
    try {
      await fsyncFd(directory);
    } finally {
      closeSync(directory);
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.#path(id), { force: true });
  }

  async *list(): AsyncIterable<StoredItem<string>> {
    for (const id of await readdirIfPresent(this.#dir)) {
      const info = await stat(join(this.#dir, id)).catch(() => undefined);
      if (info !== undefined) yield { key: id, modifiedAt: info.mtime };
    }
  }

  async #size(id: string): Promise<number> {
    try {
      return (await stat(this.#path(id))).size;
    } catch (error) {
      throw isNotFound(error) ? unknownUpload(id) : error;
    }
  }

  #path(id: string): string {
    if (!uploadIdPattern.test(id)) throw unknownUpload(id);
    return join(this.#dir, id);
  }

  #openUpload(id: string): number {
    try {
      return openSync(this.#path(id), 'r+');
    } catch (error) {
      throw isNotFound(error) ? unknownUpload(id) : error;
    }
  }

  /** Blob directories are made once per process (256 per algorithm); Berth never removes them. */
  #ensureDirectory(path: string): void {
    if (this.#directories.has(path)) return;
    mkdirSync(path, { recursive: true });
    this.#directories.add(path);
  }
}

/** Cuts a failed append back to where it started; a failure here leaves stray bytes that the recorded size excludes. */
function cutBack(fd: number, offset: number): void {
  try {
    ftruncateSync(fd, offset);
  } catch {
    // read() and commit() take only the recorded size.
  }
}

async function readdirIfPresent(path: string): Promise<string[]> {
  try {
    return await readdir(path);
  } catch (error) {
    if (isNotFound(error)) return [];
    throw error;
  }
}

function shortUpload(id: string, held: number, size: number): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', `upload holds ${held} bytes, expected ${size}`, { detail: { id: id.slice(0, 128) } });
}

function unknownUpload(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id: id.slice(0, 128) } });
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && 'code' in error && error.code === 'ENOENT';
}
