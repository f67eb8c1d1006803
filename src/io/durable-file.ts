import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Publishes a file as a whole: `write` fills a dot-named temp file beside
 * `path` (same directory, so the rename is atomic), which is then fsynced,
 * renamed over `path`, and the directory fsynced. Readers see the old file
 * or the new one, never half of one, and a crash leaves one of the two.
 */
export async function replaceFile(path: string, write: (temporary: string) => Promise<void>): Promise<void> {
  const directory = dirname(path);
  await mkdir(directory, { recursive: true });
  // `.partial-` names are skipped by whatever lists the directory (layouts, archives).
  const temporary = join(directory, `.partial-${basename(path)}.${randomBytes(6).toString('hex')}`);
  try {
    await write(temporary);
    await syncFile(temporary);
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  await syncDirectory(directory);
}

/** Replaces the file at `path` with `content`, durably (see `replaceFile`). */
export async function writeWhole(path: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
  await replaceFile(path, (temporary) => writeNewFile(temporary, content, mode, false));
}

/** Writes `content` to a file that must not exist yet (EEXIST when it does), fsynced unless `sync` is false. */
export async function writeNewFile(path: string, content: string | Uint8Array, mode = 0o644, sync = true): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    await handle.writeFile(content);
    if (sync) await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Pipes `source` through `stages` into a new file at `path` (which must
 * not exist) and fsyncs it, so a rename after this publishes complete bytes.
 */
export async function writeDurably(path: string, source: Readable, stages: readonly Transform[], signal?: AbortSignal, sync = true): Promise<void> {
  await pipeline([source, ...stages, createWriteStream(path, { flags: 'wx' })], signal === undefined ? {} : { signal });
  if (sync) await syncFile(path);
}

/** Flushes a file's bytes to the disk. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a directory's entries (a rename into it) to the disk. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
