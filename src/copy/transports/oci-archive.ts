import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, Tag } from '../../oci/names.ts';
import type { BlobOpener, ImageStore, ManifestData, PutBlobOptions, PutManifestOptions } from '../image-store.ts';
import { DirectoryStorage } from './layout-dir.ts';
import { OciLayoutStore } from './oci-layout.ts';
import { extractTar, packTar } from './tar.ts';

/**
 * An OCI layout in a tar file (`oci-archive:`, as skopeo and podman write
 * it). The archive is unpacked into a temporary directory (when it
 * exists), served or added to as a layout, and packed again on commit:
 * the new archive replaces the old one only when complete.
 */
export class OciArchiveStore implements ImageStore {
  readonly description: string;
  readonly #file: string;
  readonly #directory: string;
  readonly #layout: OciLayoutStore;
  #dirty = false;

  private constructor(file: string, directory: string) {
    this.#file = file;
    this.#directory = directory;
    this.description = `oci-archive:${file}`;
    this.#layout = new OciLayoutStore(new DirectoryStorage(directory, this.description), this.description);
  }

  static async open(file: string, tempRoot: string, signal?: AbortSignal): Promise<OciArchiveStore> {
    const directory = await mkdtemp(join(tempRoot, 'berth-oci-archive-'));
    try {
      if (await exists(file)) await extractTar(file, directory, signal);
    } catch (error) {
      await rm(directory, { recursive: true, force: true });
      throw error;
    }
    return new OciArchiveStore(file, directory);
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
    const blobs = (await listFiles(this.#directory, 'blobs')).sort();
    await packTar(this.#directory, ['oci-layout', 'index.json', ...blobs], this.#file, signal);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await rm(this.#directory, { recursive: true, force: true });
  }
}

/** Files under `relative`, as `/`-separated paths; temporary `.partial-` files are left out. */
export async function listFiles(root: string, relative: string): Promise<string[]> {
  const entries = await readdir(join(root, ...relative.split('/')), { withFileTypes: true }).catch(() => []);
  const files: string[] = [];
  for (const entry of entries) {
    const path = posix.join(relative, entry.name);
    if (entry.isDirectory()) files.push(...(await listFiles(root, path)));
    else if (entry.isFile() && !entry.name.startsWith('.partial-')) files.push(path);
  }
  return files;
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
