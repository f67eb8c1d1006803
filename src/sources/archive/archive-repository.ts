import type { Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { BlobStore, ByteRange } from '../../blobs/blob-store.ts';
import { isRegistryError, RegistryError } from '../../errors/registry-error.ts';
import type { ManifestRecord, Page } from '../../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../../oci/accept.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import { storedBlobBody } from '../../registry/blob-body.ts';
import { blobUnknown } from '../../registry/stored-repository.ts';
import { manifestUnknown, negotiateManifest } from '../../registry/manifests.ts';
import type { BlobBody, ManifestContent, Repository } from '../../registry/repository.ts';
import { compareNames } from '../../registry/router.ts';
import type { BlobLocation } from '../../archives/archive-contents.ts';
import { sameStamp, stampOf, type ArchiveIndex } from './archive-index.ts';
import type { ArchiveIndexCache } from './index-cache.ts';
import type { ArchiveFile, NameArchives } from './name-rules.ts';

/** What every archive repository of one source shares. */
export interface ArchiveLibrary {
  cache: ArchiveIndexCache;
  /** Holds the blobs extracted from gzip-compressed archives. */
  store: BlobStore;
}

interface FoundArchive {
  file: ArchiveFile;
  index: ArchiveIndex;
}

interface LocatedBlob {
  archive: FoundArchive;
  location: BlobLocation;
}

/**
 * One name's images, read from the archives the name rules select. Made
 * per request by ArchiveSource.open, with the candidate files listed then;
 * every lookup stats its candidates, so a replaced or deleted archive is
 * noticed on the next request.
 */
export class ArchiveRepository implements Repository {
  readonly name: RepositoryName;
  readonly #archives: NameArchives;
  readonly #library: ArchiveLibrary;
  /** A GET asks for the size, then the bytes: the lookup is done once. */
  readonly #located = new Map<Digest, Promise<LocatedBlob>>();

  constructor(name: RepositoryName, archives: NameArchives, library: ArchiveLibrary) {
    this.name = name;
    this.#archives = archives;
    this.#library = library;
  }

  async manifest(reference: Reference, accept: MediaTypeAcceptance): Promise<ManifestContent> {
    const record = reference.kind === 'tag' ? await this.#byTag(reference.tag) : await this.#byDigest(reference.digest);
    if (record === undefined) throw manifestUnknown(reference);
    return negotiateManifest(record, reference, accept, (digest) => this.#byDigest(digest));
  }

  async blobSize(digest: Digest): Promise<number> {
    return (await this.#locate(digest)).location.size;
  }

  async openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const body = await this.#read(await this.#locate(digest), digest, range, signal);
      if (body !== undefined) return body;
      this.#located.delete(digest);
    }
    throw new RegistryError('BLOB_UNKNOWN', `the archive holding blob ${digest} changed while it was being read; try again`, { detail: { digest } });
  }

  async tags(page: Page): Promise<Tag[]> {
    const tags = new Set<Tag>();
    let readable = false;
    for await (const { index } of this.#inOrder()) {
      readable = true;
      for (const tag of index.tags.keys()) tags.add(tag);
    }
    if (!readable) throw new RegistryError('NAME_UNKNOWN', `repository ${this.name} is not known: none of its archives can be read`, { detail: { name: this.name } });
    const sorted = [...tags].sort(compareNames).filter((tag) => page.last === undefined || tag > page.last);
    return page.limit === undefined ? sorted : sorted.slice(0, page.limit);
  }

  async referrers(subject: Digest, artifactType: string | undefined): Promise<Descriptor[]> {
    const found = new Map<Digest, Descriptor>();
    for await (const { index } of this.#inOrder()) {
      for (const record of index.manifests.values()) {
        if (record.subject !== subject || found.has(record.digest)) continue;
        if (artifactType !== undefined && record.artifactType !== artifactType) continue;
        found.set(record.digest, descriptorOf(record));
      }
    }
    return [...found.values()];
  }

  /** The first archive holding the tag, in the rules' order. */
  async #byTag(tag: Tag): Promise<ManifestRecord | undefined> {
    for await (const { index } of this.#inOrder(tag)) {
      const digest = index.tags.get(tag);
      const record = digest === undefined ? undefined : index.manifests.get(digest);
      if (record !== undefined) return record;
    }
    return undefined;
  }

  /** Content-addressed: any of the name's archives holding the digest will do. */
  async #byDigest(digest: Digest): Promise<ManifestRecord | undefined> {
    for await (const { index } of this.#inOrder()) {
      const record = index.manifests.get(digest);
      if (record !== undefined) return record;
    }
    return undefined;
  }

  #locate(digest: Digest): Promise<LocatedBlob> {
    let located = this.#located.get(digest);
    if (located === undefined) {
      located = (async () => {
        for await (const archive of this.#inOrder()) {
          const location = archive.index.blobs.get(digest);
          if (location !== undefined) return { archive, location };
        }
        throw blobUnknown(digest);
      })();
      this.#located.set(digest, located);
    }
    return located;
  }

  /**
   * The blob's bytes, or undefined when the archive changed since it was
   * indexed (so the offsets may be wrong) or its extracted copy is gone.
   */
  async #read({ archive, location }: LocatedBlob, digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody | undefined> {
    const { cache, store } = this.#library;
    if (location.kind === 'store') {
      try {
        return await storedBlobBody(store, digest, range, { redirects: false, signal });
      } catch (error) {
        if (!isRegistryError(error) || error.code !== 'BLOB_UNKNOWN') throw error;
        cache.purge(archive.file.path);
        return undefined;
      }
    }
    const handle = await open(archive.file.path, 'r').catch((error: unknown) => {
      if (isNotFound(error)) return undefined;
      throw error;
    });
    if (handle === undefined) return undefined;
    try {
      if (!sameStamp(stampOf(await handle.stat()), archive.index.stamp)) {
        await handle.close();
        return undefined;
      }
      if (location.size === 0) {
        await handle.close();
        return { kind: 'stream', stream: Readable.from([]) };
      }
      // The receiver owns the handle from here and closes it when done.
      const start = location.offset + (range?.start ?? 0);
      return { kind: 'file', region: { handle, start, end: location.offset + (range?.end ?? location.size - 1) } };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * The name's readable archives in the rules' order. Within one rule the
   * newest file comes first, ties broken by path, so a newer archive
   * claiming the same tag wins. Deleted files are forgotten; damaged ones
   * skipped (the cache has warned about them).
   */
  async *#inOrder(reference?: Tag): AsyncGenerator<FoundArchive> {
    const { cache } = this.#library;
    for (const group of this.#archives.groups(reference)) {
      const present: { file: ArchiveFile; stats: Stats }[] = [];
      await Promise.all(
        group.map(async (file) => {
          const stats = await stat(file.path).catch((error: unknown) => {
            if (isNotFound(error)) return undefined;
            throw error;
          });
          if (stats === undefined) cache.purge(file.path);
          else if (stats.isFile()) present.push({ file, stats });
        }),
      );
      present.sort((a, b) => b.stats.mtimeMs - a.stats.mtimeMs || compareNames(a.file.path, b.file.path));
      for (const { file, stats } of present) {
        const index = await cache.get(file.path, stampOf(stats)).catch(() => undefined);
        if (index !== undefined) yield { file, index };
      }
    }
  }
}

function descriptorOf(record: ManifestRecord): Descriptor {
  const descriptor: Descriptor = { mediaType: record.mediaType, digest: record.digest, size: record.bytes.byteLength };
  if (record.artifactType !== undefined) descriptor.artifactType = record.artifactType;
  if (record.annotations !== undefined) descriptor.annotations = record.annotations;
  return descriptor;
}

function isNotFound(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
