import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { MeteredStream } from '../../registry/blob-writer.ts';
import { algorithmOf, finishDigest, type Digest } from '../../oci/digest.ts';
import { writeDurably } from '../durable-file.ts';
import type { BlobOpener } from '../image-store.ts';
import type { LayoutStorage } from './layout-storage.ts';

/**
 * A layout in a local directory. Files are written beside their final
 * name's directory under a temporary name, fsynced, then renamed: a
 * reader (or a crash) never sees half a blob.
 */
export class DirectoryStorage implements LayoutStorage {
  readonly description: string;
  readonly #root: string;

  constructor(root: string, description = root) {
    this.#root = root;
    this.description = description;
  }

  async stat(path: string): Promise<number | undefined> {
    try {
      const info = await stat(this.#path(path));
      return info.isFile() ? info.size : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async read(path: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    let handle;
    try {
      handle = await open(this.#path(path), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    return handle.createReadStream({
      highWaterMark: 1024 * 1024,
      ...(range === undefined ? {} : { start: range.start, end: range.end }),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  async readSmall(path: string, limit: number): Promise<Buffer | undefined> {
    const size = await this.stat(path);
    if (size === undefined) return undefined;
    if (size > limit) throw new RegistryError('SIZE_INVALID', `${this.description}/${path} is larger than ${limit} bytes`);
    return readFile(this.#path(path));
  }

  async writeBlob(path: string, openBlob: BlobOpener, expected: { digest: Digest; size: number }, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void> {
    const algorithm = algorithmOf(expected.digest);
    const hash = createHash(algorithm);
    const metered = new MeteredStream(hash, expected.size);
    if (onProgress !== undefined) metered.on('data', () => onProgress(metered.bytes));
    await this.#atomically(path, async (temporary) => {
      await writeDurably(temporary, await openBlob(), [metered], signal);
      const actual = finishDigest(hash, algorithm);
      if (actual !== expected.digest) {
        throw new RegistryError('DIGEST_INVALID', `${expected.digest}: the source sent content with digest ${actual}`, { detail: { expected: expected.digest, actual } });
      }
    });
  }

  async writeSmall(path: string, bytes: Uint8Array): Promise<void> {
    await this.#atomically(path, async (temporary) => {
      const handle = await open(temporary, 'wx');
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
    });
  }

  async #atomically(path: string, write: (temporary: string) => Promise<void>): Promise<void> {
    const target = this.#path(path);
    await mkdir(dirname(target), { recursive: true });
    // Dot-named so that tools listing blobs/ skip it; same directory, so the rename is atomic.
    const temporary = join(dirname(target), `.partial-${randomUUID()}`);
    try {
      await write(temporary);
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  #path(path: string): string {
    return join(this.#root, ...path.split('/'));
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Streams part of a local file: for re-reading spooled data. */
export function fileOpener(path: string): BlobOpener {
  return async (range) => createReadStream(path, { highWaterMark: 1024 * 1024, ...(range === undefined ? {} : { start: range.start, end: range.end }) });
}
