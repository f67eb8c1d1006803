import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, Tag } from '../../oci/names.ts';
import type { BlobOpener, ImageStore, ManifestData, PutBlobOptions, PutManifestOptions } from '../image-store.ts';
import { DirectoryStorage } from './layout-dir.ts';
import type { LayoutStorage } from './layout-storage.ts';
import { OciLayoutStore } from './oci-layout.ts';
import { packTar, type PackedFile } from './tar.ts';
import { TarArchive } from './tar-archive.ts';

/**
 * An OCI layout in a tar file (`oci-archive:`, as skopeo and podman write
 * it). The archive is read in place; what is added goes to a temporary
 * directory layered over it, and commit packs both into a new archive that
 * replaces the old one only when complete.
 */
export class OciArchiveStore implements ImageStore {
  readonly description: string;
  readonly requiresOci = true;
  readonly #file: string;
  readonly #directory: string;
  readonly #archive: TarArchive | undefined;
  readonly #layout: OciLayoutStore;
  #dirty = false;

  private constructor(file: string, directory: string, archive: TarArchive | undefined) {
    this.#file = file;
    this.#directory = directory;
    this.#archive = archive;
    this.description = `oci-archive:${file}`;
    this.#layout = new OciLayoutStore(new OverlayStorage(new DirectoryStorage(directory, this.description), archive), this.description);
  }

  static async open(file: string, tempRoot: string, signal?: AbortSignal): Promise<OciArchiveStore> {
    const archive = await TarArchive.open(file, tempRoot, signal);
    const directory = await mkdtemp(join(tempRoot, 'berth-oci-archive-')).catch(async (error: unknown) => {
      await archive?.close();
      throw error;
    });
    return new OciArchiveStore(file, directory, archive);
  }

  getManifest(reference: Reference | undefined, signal?: AbortSignal): Promise<ManifestData> {
    return this.#layout.getManifest(reference, signal);
  }

  openBlob(descriptor: Descriptor, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return this.#layout.openBlob(descriptor, range, signal);
  }

  listTags(signal?: AbortSignal): Promise<Tag[]> {
    return this.#layout.listTags(signal);
  }

  hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
    return this.#layout.hasBlob(descriptor, signal);
  }

  putBlob(descriptor: Descriptor, open: BlobOpener, options?: PutBlobOptions): Promise<'copied'> {
    this.#dirty = true;
    return this.#layout.putBlob(descriptor, open, options);
  }

  putManifest(manifest: ManifestData, tag: Tag | undefined, options?: PutManifestOptions): Promise<void> {
    this.#dirty = true;
    return this.#layout.putManifest(manifest, tag, options);
  }

  async commit(signal?: AbortSignal): Promise<void> {
    if (!this.#dirty) return;
    await this.#layout.commit(signal);
    await packTar(await overlayFiles(this.#directory, this.#archive), this.#file, signal);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await this.#archive?.close();
    await rm(this.#directory, { recursive: true, force: true });
  }
}

/** Files written here first, then what the archive had: new files shadow old ones of the same name. */
class OverlayStorage implements LayoutStorage {
  readonly description: string;
  readonly #top: DirectoryStorage;
  readonly #base: TarArchive | undefined;

  constructor(top: DirectoryStorage, base: TarArchive | undefined) {
    this.#top = top;
    this.#base = base;
    this.description = top.description;
  }

  async missing(): Promise<'file' | undefined> {
    return this.#base === undefined ? 'file' : undefined;
  }

  async stat(path: string): Promise<number | undefined> {
    return (await this.#top.stat(path)) ?? this.#base?.size(path);
  }

  async read(path: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable | undefined> {
    return (await this.#top.read(path, range, signal)) ?? this.#base?.read(path, range, signal);
  }

  async readSmall(path: string, limit: number): Promise<Buffer | undefined> {
    const size = this.#base?.size(path);
    if (size !== undefined && size > limit) throw new RegistryError('SIZE_INVALID', `${this.description}: ${path} is larger than ${limit} bytes`);
    return (await this.#top.readSmall(path, limit)) ?? this.#base?.readFile(path, limit);
  }

  writeBlob(path: string, open: BlobOpener, expected: { digest: Digest; size: number }, onProgress?: (bytes: number) => void, signal?: AbortSignal): Promise<void> {
    return this.#top.writeBlob(path, open, expected, onProgress, signal);
  }

  writeSmall(path: string, bytes: Uint8Array): Promise<void> {
    return this.#top.writeSmall(path, bytes);
  }
}

/** The files of a new archive: the layout files first (as skopeo writes them), then blobs in order. */
async function overlayFiles(directory: string, archive: TarArchive | undefined): Promise<PackedFile[]> {
  const files = new Map<string, PackedFile>();
  for (const [name, entry] of archive?.entries ?? []) files.set(name, { name, size: entry.size, open: () => archive?.readAt(entry) as Readable });
  for (const name of await listFiles(directory, '')) {
    const path = join(directory, ...name.split('/'));
    files.set(name, { name, size: (await stat(path)).size, open: () => createReadStream(path, { highWaterMark: 1024 * 1024 }) });
  }
  const first = ['oci-layout', 'index.json'];
  const rest = [...files.keys()].filter((name) => !first.includes(name)).sort();
  return [...first, ...rest].flatMap((name) => {
    const file = files.get(name);
    return file === undefined ? [] : [file];
  });
}

/** Files under `relative`, as `/`-separated paths; temporary `.partial-` files are left out. */
async function listFiles(root: string, relative: string): Promise<string[]> {
  const entries = await readdir(relative === '' ? root : join(root, ...relative.split('/')), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = relative === '' ? entry.name : posix.join(relative, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(root, path)));
    else if (entry.isFile() && !entry.name.startsWith('.partial-')) files.push(path);
  }
  return files;
}
