import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Pipes `source` through `stages` into a new file at `path` (which must
 * not exist) and fsyncs it, so a rename after this publishes complete bytes.
 */
export async function writeDurably(path: string, source: Readable, stages: readonly Transform[], signal?: AbortSignal, sync = true): Promise<void> {
  await pipeline([source, ...stages, createWriteStream(path, { flags: 'wx' })], signal === undefined ? {} : { signal });
  if (!sync) return;
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
