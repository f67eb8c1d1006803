import type { Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { BlobStore } from '../../blobs/blob-store.ts';
import type { ManifestRecord } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Tag } from '../../oci/names.ts';
import { ArchiveFormatError, type ArchiveContents, type BlobLocation } from '../../archives/archive-contents.ts';
import { readDockerArchive } from '../../archives/docker-archive.ts';
import { extractGzipArchive } from './gzip-contents.ts';
import { readOciLayout } from './oci-layout.ts';
import { TarContents } from '../../archives/tar-contents.ts';
import { readTarEntries } from '../../archives/tar-entries.ts';

/** What identifies one version of an archive file; any change means "index again". */
export interface ArchiveStamp {
  size: number;
  mtimeMs: number;
  ino: number;
}

export function stampOf(stats: Stats): ArchiveStamp {
  return { size: stats.size, mtimeMs: stats.mtimeMs, ino: stats.ino };
}

export function sameStamp(a: ArchiveStamp, b: ArchiveStamp): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino;
}

/** Everything Berth serves from one archive, read once. */
export interface ArchiveIndex {
  format: 'oci-layout' | 'docker-archive';
  compressed: boolean;
  stamp: ArchiveStamp;
  /** Tags naming the archive's top-level images. */
  tags: ReadonlyMap<Tag, Digest>;
  /** Every manifest reachable from the archive's top level, exact bytes. */
  manifests: ReadonlyMap<Digest, ManifestRecord>;
  blobs: ReadonlyMap<Digest, BlobLocation>;
}

/** What the format readers hand back, before the stamp is known. */
export type ArchiveContent = Pick<ArchiveIndex, 'tags' | 'manifests' | 'blobs'>;

export interface IndexOptions {
  /** Manifests and JSON metadata above this size make an archive unreadable. */
  maxManifestBytes: number;
  signal?: AbortSignal;
}

/**
 * Indexes one archive file: OCI image layout or Docker archive, plain or
 * gzip-compressed (detected by content, not by name). Plain archives are
 * read in place; a gzip archive's blobs are extracted once into `store`.
 * Fails with ArchiveFormatError when the file changes while it is read.
 */
export async function indexArchive(path: string, store: BlobStore, options: IndexOptions): Promise<ArchiveIndex> {
  const handle = await open(path, 'r');
  try {
    const stamp = stampOf(await handle.stat());
    const compressed = await isGzip(handle);
    const contents: ArchiveContents = compressed ? await extractGzipArchive(handle, store, options) : new TarContents(handle, await readTarEntries(handle, stamp.size));
    let format: ArchiveIndex['format'];
    let content: ArchiveContent;
    if (contents.has('oci-layout') && contents.has('index.json')) {
      format = 'oci-layout';
      content = await readOciLayout(contents, options.maxManifestBytes);
    } else if (contents.has('manifest.json')) {
      format = 'docker-archive';
      content = await readDockerArchive(contents, options.maxManifestBytes);
    } else {
      throw new ArchiveFormatError('neither an OCI image layout (oci-layout, index.json) nor a Docker archive (manifest.json)');
    }
    if (!sameStamp(stamp, stampOf(await handle.stat()))) throw new ArchiveFormatError('the archive changed while it was being indexed');
    return { format, compressed, stamp, ...content };
  } finally {
    await handle.close();
  }
}

async function isGzip(handle: FileHandle): Promise<boolean> {
  const magic = Buffer.alloc(2);
  const { bytesRead } = await handle.read(magic, 0, 2, 0);
  return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
}
