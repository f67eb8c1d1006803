import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { checkDigest } from '../../io/digest-check.ts';
import { replaceFile, writeDurably, writeWhole } from '../../io/durable-file.ts';
import { MeteredStream } from '../../io/metered-stream.ts';
import { algorithmOf, finishDigest, type Digest } from '../../oci/digest.ts';
import type { BlobOpener } from '../image-store.ts';
import type { LayoutStorage } from './layout-storage.ts';

/**
 * A layout in a local directory. Files are published with `replaceFile`:
 * a reader (or a crash) never sees half a blob.
 */
export class DirectoryStorage implements LayoutStorage {
  readonly description: string;
  readonly #root: string;

  constructor(root: string, description = root) {
    this.#root = root;
    this.description = description;
  }

  async missing(): Promise<'directory' | undefined> {
    try {
      await stat(this.#root);
      return undefined;
    } catch (error) {
      if (isMissing(error)) return 'directory';
      throw error;
    }
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
    await replaceFile(this.#path(path), async (temporary) => {
      await writeDurably(temporary, await openBlob(), [metered], signal, false);
      checkDigest(expected.digest, finishDigest(hash, algorithm), (actual) => `${expected.digest}: the source sent content with digest ${actual}`);
    });
  }

  async writeSmall(path: string, bytes: Uint8Array): Promise<void> {
    await writeWhole(this.#path(path), bytes);
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
