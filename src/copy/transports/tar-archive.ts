import { randomUUID } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { TarContents } from '../../archives/tar-contents.ts';
import { readTarEntries, type TarEntry } from '../../archives/tar-entries.ts';
import { writeDurably } from '../../io/durable-file.ts';

/**
 * A tar archive read in place: entries located by the archive kind's tar
 * reader, bytes read by range, nothing extracted. A gzip-compressed
 * archive (which cannot be read at an offset) is first decompressed into a
 * temporary tar.
 */
export class TarArchive {
  readonly entries: Map<string, TarEntry>;
  /** For the archive kind's format readers (readDockerArchive). */
  readonly contents: TarContents;
  readonly #handle: FileHandle;
  readonly #temporary: string | undefined;

  private constructor(handle: FileHandle, entries: Map<string, TarEntry>, temporary: string | undefined) {
    this.#handle = handle;
    this.entries = entries;
    this.contents = new TarContents(handle, entries);
    this.#temporary = temporary;
  }

  /** The archive at `file`, or undefined when there is none yet. */
  static async open(file: string, tempRoot: string, signal?: AbortSignal): Promise<TarArchive | undefined> {
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    let temporary: string | undefined;
    try {
      if (await isGzip(handle)) {
        temporary = join(tempRoot, `berth-archive-${randomUUID()}.tar`);
        await writeDurably(temporary, handle.createReadStream({ autoClose: false }), [createGunzip()], signal, false);
        await handle.close();
        handle = await open(temporary, 'r');
      }
      return new TarArchive(handle, await readTarEntries(handle, (await handle.stat()).size), temporary);
    } catch (error) {
      await handle.close().catch(() => undefined);
      if (temporary !== undefined) await rm(temporary, { force: true });
      if (error instanceof RegistryError) throw error;
      throw new RegistryError('MANIFEST_INVALID', `${file}: not a readable tar archive: ${(error as Error).message}`, { cause: error });
    }
  }

  size(path: string): number | undefined {
    return this.entries.get(path)?.size;
  }

  /** An entry's bytes (or the inclusive range of them); undefined when the archive has no such file. */
  read(path: string, range?: ByteRange, signal?: AbortSignal): Readable | undefined {
    const entry = this.entries.get(path);
    if (entry === undefined) return undefined;
    return this.readAt({ offset: entry.offset, size: entry.size }, range, signal);
  }

  /** Bytes at a location inside the archive (as the format readers report them). */
  readAt(location: { offset: number; size: number }, range?: ByteRange, signal?: AbortSignal): Readable {
    const start = location.offset + (range?.start ?? 0);
    const end = location.offset + (range?.end ?? location.size - 1);
    if (end < start) return Readable.from([]);
    return this.#handle.createReadStream({ start, end, autoClose: false, highWaterMark: 1024 * 1024, ...(signal === undefined ? {} : { signal }) });
  }

  async readFile(path: string, limit: number): Promise<Buffer | undefined> {
    if (!this.entries.has(path)) return undefined;
    return this.contents.readFile(path, limit);
  }

  async close(): Promise<void> {
    await this.#handle.close().catch(() => undefined);
    if (this.#temporary !== undefined) await rm(this.#temporary, { force: true });
  }
}

async function isGzip(handle: FileHandle): Promise<boolean> {
  const magic = Buffer.alloc(2);
  const { bytesRead } = await handle.read(magic, 0, 2, 0);
  return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
}
