import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, link, lstat, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { RegistryError } from '../../errors/registry-error.ts';
import { writeDurably } from '../durable-file.ts';

/**
 * Unpacks a tar archive (plain or gzip-compressed) into `into`. Only
 * regular files, directories and links that stay inside `into` are
 * accepted: an entry that would escape is an error, not a silent skip.
 */
export async function extractTar(file: string, into: string, signal?: AbortSignal): Promise<void> {
  const links: { name: string; target: string }[] = [];
  const extract = tar.extract();
  const input = await openMaybeGzipped(file);
  const reading = pipeline(input, extract, signal === undefined ? {} : { signal });
  for await (const entry of extract) {
    const name = safeName(entry.header.name, file);
    const type = entry.header.type ?? 'file';
    if (name === '') {
      entry.resume();
      continue;
    }
    const path = join(into, ...name.split('/'));
    if (type === 'file' || type === 'contiguous-file') {
      await mkdir(dirname(path), { recursive: true });
      await pipeline(entry, createWriteStream(path));
      continue;
    }
    entry.resume();
    if (type === 'directory') await mkdir(path, { recursive: true });
    else if (type === 'link') links.push({ name, target: safeName(entry.header.linkname ?? '', file) });
    else if (type === 'symlink') links.push({ name, target: safeName(posix.join(posix.dirname(name), entry.header.linkname ?? ''), file) });
  }
  await reading;
  for (const { name, target } of links) {
    const from = join(into, ...target.split('/'));
    const to = join(into, ...name.split('/'));
    const info = await lstat(from).catch(() => undefined);
    if (info === undefined || !info.isFile()) throw invalidArchive(file, `link ${name} points at ${target}, which is not a file in the archive`);
    await mkdir(dirname(to), { recursive: true });
    await link(from, to).catch(() => copyFile(from, to));
  }
}

/**
 * Writes `files` (relative paths under `dir`) into a tar at `output`,
 * with directory entries for their parents. The archive appears under its
 * name only once complete and synced.
 */
export async function packTar(dir: string, files: readonly string[], output: string, signal?: AbortSignal): Promise<void> {
  const temporary = join(dirname(output), `.${posix.basename(output)}.partial-${randomUUID()}`);
  const pack = tar.pack();
  const writing = writeDurably(temporary, pack as unknown as Readable, [], signal);
  writing.catch(() => undefined);
  try {
    const directories = new Set<string>();
    const mtime = new Date(0);
    for (const file of files) {
      for (let parent = posix.dirname(file); parent !== '.' && !directories.has(parent); parent = posix.dirname(parent)) {
        directories.add(parent);
      }
    }
    for (const directory of [...directories].sort()) {
      await entryDone(pack, { name: `${directory}/`, type: 'directory', mode: 0o755, mtime }, undefined);
    }
    for (const file of files) {
      const path = join(dir, ...file.split('/'));
      const size = (await stat(path)).size;
      await entryDone(pack, { name: file, size, mode: 0o644, mtime }, createReadStream(path, { highWaterMark: 1024 * 1024 }));
    }
    pack.finalize();
    await writing;
    await rename(temporary, output);
  } catch (error) {
    pack.destroy();
    await writing.catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
}

function entryDone(pack: tar.Pack, header: Partial<tar.Header> & { name: string }, body: Readable | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve());
    if (body === undefined) pack.entry(header, Buffer.alloc(0), done);
    else pipeline(body, pack.entry(header, done)).catch(reject);
  });
}

/** `./a/b` → `a/b`; absolute names or `..` segments are refused. */
function safeName(name: string, file: string): string {
  const normalized = posix.normalize(name.replace(/^(\.\/)+/, '')).replace(/\/+$/, '');
  if (normalized === '.' || normalized === '') return '';
  if (posix.isAbsolute(normalized) || normalized.split('/').includes('..')) throw invalidArchive(file, `entry "${name.slice(0, 200)}" points outside the archive`);
  return normalized;
}

async function openMaybeGzipped(file: string): Promise<Readable> {
  const handle = await open(file, 'r');
  const head = Buffer.alloc(2);
  await handle.read(head, 0, 2, 0);
  const stream = handle.createReadStream({ start: 0, highWaterMark: 1024 * 1024 });
  if (head[0] === 0x1f && head[1] === 0x8b) {
    const gunzip = createGunzip();
    pipeline(stream, gunzip).catch((error: unknown) => gunzip.destroy(error as Error));
    return gunzip;
  }
  return stream.pipe(new PassThrough());
}

function invalidArchive(file: string, reason: string): RegistryError {
  return new RegistryError('MANIFEST_INVALID', `${file}: ${reason}`);
}
