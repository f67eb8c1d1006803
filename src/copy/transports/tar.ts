import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { replaceFile, writeDurably } from '../../io/durable-file.ts';

/** A file to pack: its path in the archive, size, and where its bytes come from. */
export interface PackedFile {
  name: string;
  size: number;
  open(): Readable;
}

/**
 * Writes `files` into a tar at `output`, with directory entries for their
 * parents. The archive appears under its name only once complete and
 * synced, so the one it replaces stays readable (and is read from) until then.
 */
export async function packTar(files: readonly PackedFile[], output: string, signal?: AbortSignal): Promise<void> {
  await replaceFile(output, async (temporary) => {
    const pack = tar.pack();
    const writing = writeDurably(temporary, pack as unknown as Readable, [], signal, false);
    writing.catch(() => undefined);
    try {
      const mtime = new Date(0);
      const directories = new Set<string>();
      for (const file of files) {
        for (let parent = posix.dirname(file.name); parent !== '.'; parent = posix.dirname(parent)) directories.add(parent);
      }
      for (const directory of [...directories].sort()) {
        await new Promise<void>((resolve, reject) =>
          pack.entry({ name: `${directory}/`, type: 'directory', mode: 0o755, mtime }, Buffer.alloc(0), (error) => (error ? reject(error) : resolve())),
        );
      }
      for (const file of files) {
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name: file.name, size: file.size, mode: 0o644, mtime }, (error) => (error ? reject(error) : resolve()));
          pipeline(file.open(), entry).catch(reject);
        });
      }
      pack.finalize();
      await writing;
    } catch (error) {
      pack.destroy();
      await writing.catch(() => undefined);
      throw error;
    }
  });
}
