import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header, type Pack } from 'tar-stream';

/** A tar header as tar-stream packs it: everything but the name may be left to defaults. */
type PackHeader = Partial<Header> & Pick<Header, 'name'>;
import type { BlobStore } from '../../src/blobs/blob-store.ts';
import type { StoredLayer } from '../../src/meta/droplet-store.ts';
import { storeTarAsLayer } from '../../src/sources/droplet/layer-writer.ts';

/** One file-system entry of a layer. Paths are relative to `/`, without `./` or a trailing slash. */
export type LayerEntry =
  | { type: 'directory'; path: string; mode: number; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'file'; path: string; mode: number; uid?: number; gid?: number; bytes: Buffer }
  | { type: 'file'; path: string; mode: number; uid?: number; gid?: number; size: number; open(): Readable };

/**
 * Writes `entries` as a gzip layer into `blobs`, the same bytes for the
 * same entries wherever and whenever it runs: entries sorted by path
 * (parents first), every time `mtime`, owner root unless the entry says
 * otherwise, no user or group names, and gzip without a timestamp (Node's
 * zlib writes none). Missing parent directories are added (0755, root).
 */
export async function storeLayer(blobs: BlobStore, entries: readonly LayerEntry[], mtime: Date): Promise<StoredLayer> {
  const ordered = withParents(entries);
  const pack = tar.pack();
  const writing = writeEntries(pack, ordered, mtime);
  writing.catch((error: unknown) => pack.destroy(error instanceof Error ? error : new Error(String(error))));
  return storeTarAsLayer(blobs, pack as unknown as Readable);
}

/** The entries in tar order, with their parent directories; a path given twice is a mistake in the caller. */
export function withParents(entries: readonly LayerEntry[]): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  for (const entry of entries) {
    checkPath(entry.path);
    if (byPath.has(entry.path)) throw new Error(`layer: ${entry.path} is given twice`);
    byPath.set(entry.path, entry);
  }
  for (const entry of entries) {
    for (let parent = posix.dirname(entry.path); parent !== '.'; parent = posix.dirname(parent)) {
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { type: 'directory', path: parent, mode: 0o755 });
      else if (existing.type !== 'directory') throw new Error(`layer: ${entry.path} lies under ${parent}, which is not a directory`);
    }
  }
  // Byte order of the paths puts every directory before what it holds ("a" is a prefix of "a/b").
  return [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

function checkPath(path: string): void {
  if (path === '' || path.startsWith('/') || path.endsWith('/') || path.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`layer: "${path}" is not a clean relative path`);
  }
}

async function writeEntries(pack: Pack, entries: readonly LayerEntry[], mtime: Date): Promise<void> {
  for (const entry of entries) {
    const header: PackHeader = { name: entry.path, mtime, uid: 0, gid: 0, uname: '', gname: '' };
    if (entry.type === 'symlink') {
      await add(pack, { ...header, type: 'symlink', linkname: entry.target, mode: 0o777 });
    } else if (entry.type === 'directory') {
      await add(pack, { ...header, name: `${entry.path}/`, type: 'directory', mode: entry.mode, uid: entry.uid ?? 0, gid: entry.gid ?? 0 });
    } else {
      const fileHeader: PackHeader = { ...header, type: 'file', mode: entry.mode, uid: entry.uid ?? 0, gid: entry.gid ?? 0 };
      if ('bytes' in entry) await add(pack, { ...fileHeader, size: entry.bytes.length }, entry.bytes);
      else await pipeline(entry.open(), pack.entry({ ...fileHeader, size: entry.size }));
    }
  }
  pack.finalize();
}

function add(pack: Pack, header: PackHeader, body: Buffer = Buffer.alloc(0)): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, body, (error) => (error ? reject(error) : resolve())));
}
