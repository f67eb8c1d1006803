import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { digestStream, MeteredStream } from '../../registry/blob-writer.ts';
import { digestOf, finishDigest, hexOf, tryParseDigest, type Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { isIndexMediaType, isManifestMediaType, mediaTypes } from '../../oci/media-types.ts';
import { isTag, type Reference, type Tag } from '../../oci/names.ts';
import { writeDurably } from '../durable-file.ts';
import { decompressor, layerMediaType, sniffFileCompression } from '../compression.ts';
import { blobNotFound, manifestNotFound, type BlobOpener, type ImageStore, type ManifestData, type PutBlobOptions, type PutManifestOptions } from '../image-store.ts';
import { DirectoryStorage, fileOpener } from './layout-dir.ts';
import { exists } from './oci-archive.ts';
import { extractTar, packTar } from './tar.ts';

/** One image in manifest.json, as `docker save` writes it. */
interface ArchiveEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/** An image read from the archive: a manifest made up for it, and where its blobs are. */
interface SynthesizedImage {
  manifest: ManifestData;
  blobs: Map<Digest, string>;
}

const maxConfigBytes = 16 * 1024 * 1024;

/**
 * The `docker save` / `docker load` format (also podman's and skopeo's
 * `docker-archive:`): manifest.json listing each image's config file,
 * names and uncompressed layer tars. Archives have no manifests, so one
 * is made up when reading (OCI, layers typed by what their bytes are); on
 * writing, layers are decompressed, checked against the config's diff_ids
 * and stored as `<diff_id>.tar`. The archive is rebuilt on commit.
 */
export class DockerArchiveStore implements ImageStore {
  readonly description: string;
  readonly storesUncompressedLayers = true;
  readonly #file: string;
  readonly #directory: string;
  readonly #incoming: DirectoryStorage;
  readonly #selection: { name?: string; index?: number };
  /** The name images get when written with a tag but no full name (`<defaultName>:<tag>`). */
  readonly #defaultName: string | undefined;
  #entries: ArchiveEntry[] = [];
  readonly #images = new Map<number, SynthesizedImage>();
  readonly #blobs = new Map<Digest, string>();
  #dirty = false;

  private constructor(file: string, directory: string, selection: { name?: string; index?: number }, defaultName: string | undefined) {
    this.#file = file;
    this.#directory = directory;
    this.#selection = selection;
    this.#defaultName = defaultName;
    this.description = `docker-archive:${file}`;
    this.#incoming = new DirectoryStorage(directory, this.description);
  }

  static async open(
    file: string,
    options: { tempRoot: string; name?: string; index?: number; defaultName?: string },
    signal?: AbortSignal,
  ): Promise<DockerArchiveStore> {
    const directory = await mkdtemp(join(options.tempRoot, 'berth-docker-archive-'));
    const selection = { ...(options.name === undefined ? {} : { name: options.name }), ...(options.index === undefined ? {} : { index: options.index }) };
    const store = new DockerArchiveStore(file, directory, selection, options.defaultName ?? options.name?.replace(/:[^:/]+$/, ''));
    try {
      if (await exists(file)) {
        await extractTar(file, directory, signal);
        store.#entries = await readEntries(directory, file);
      }
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  async getManifest(reference: Reference | undefined, signal?: AbortSignal): Promise<ManifestData> {
    if (reference?.kind === 'digest') {
      for (let index = 0; index < this.#entries.length; index += 1) {
        const image = await this.#image(index, signal);
        if (image.manifest.digest === reference.digest) return image.manifest;
      }
      throw manifestNotFound(this.description, reference);
    }
    const index = this.#select(reference?.tag);
    if (index === undefined) throw manifestNotFound(this.description, this.#selection.name ?? reference);
    return (await this.#image(index, signal)).manifest;
  }

  async openBlob(descriptor: Descriptor, range?: ByteRange): Promise<Readable> {
    const path = this.#blobs.get(descriptor.digest);
    if (path === undefined) throw blobNotFound(this.description, descriptor.digest);
    return fileOpener(path)(range);
  }

  async listTags(): Promise<Tag[]> {
    const tags = this.#entries.flatMap((entry) => (entry.RepoTags ?? []).map((name) => name.slice(name.lastIndexOf(':') + 1)));
    return [...new Set(tags.filter(isTag))].sort();
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    const path = this.#blobs.get(descriptor.digest);
    return path !== undefined && (await exists(path));
  }

  async putBlob(descriptor: Descriptor, openBlob: BlobOpener, options: PutBlobOptions = {}): Promise<'copied'> {
    const relative = `incoming/${hexOf(descriptor.digest)}`;
    await this.#incoming.writeBlob(relative, openBlob, descriptor, options.onProgress, options.signal);
    this.#blobs.set(descriptor.digest, join(this.#directory, 'incoming', hexOf(descriptor.digest)));
    return 'copied';
  }

  async putManifest(manifest: ManifestData, tag: Tag | undefined, options: PutManifestOptions = {}): Promise<void> {
    const { signal } = options;
    if (options.child === true || !isManifestMediaType(manifest.mediaType) || isIndexMediaType(manifest.mediaType)) {
      throw new RegistryError('UNSUPPORTED', `${this.description}: a docker archive holds single-platform images; choose one with --platform (not --all)`);
    }
    const parsed = JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const configPath = this.#blobs.get(parsed.config.digest);
    if (configPath === undefined) throw blobNotFound(this.description, parsed.config.digest);
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { rootfs?: { diff_ids?: unknown } };
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : [];
    if (diffIds.length !== parsed.layers.length) {
      throw new RegistryError('MANIFEST_INVALID', `${this.description}: the image config lists ${diffIds.length} diff_ids for ${parsed.layers.length} layers; docker load would refuse it`);
    }
    const configFile = `${hexOf(parsed.config.digest)}.json`;
    await copyFile(configPath, join(this.#directory, configFile));
    const layers: string[] = [];
    for (const [position, layer] of parsed.layers.entries()) {
      const diffId = tryParseDigest(String(diffIds[position]));
      if (diffId === undefined) throw new RegistryError('MANIFEST_INVALID', `${this.description}: diff_ids[${position}] is not a digest`);
      layers.push(await this.#storeLayer(layer, diffId, signal));
    }
    const name = this.#nameFor(tag);
    if (name !== undefined) {
      // A name points at one image; an image left without names was only there for it.
      this.#entries = this.#entries.filter((entry) => {
        const before = entry.RepoTags ?? [];
        entry.RepoTags = before.filter((existing) => existing !== name);
        return entry.RepoTags.length > 0 || before.length === 0;
      });
      this.#images.clear();
    }
    const same = this.#entries.find((entry) => entry.Config === configFile && entry.Layers.join() === layers.join());
    if (same !== undefined) {
      if (name !== undefined) same.RepoTags = [...(same.RepoTags ?? []), name];
    } else {
      this.#entries.push({ Config: configFile, RepoTags: name === undefined ? null : [name], Layers: layers });
    }
    this.#dirty = true;
  }

  async commit(signal?: AbortSignal): Promise<void> {
    if (!this.#dirty) return;
    await writeFile(join(this.#directory, 'manifest.json'), JSON.stringify(this.#entries));
    const files = [...new Set(this.#entries.flatMap((entry) => [entry.Config, ...entry.Layers]))];
    await packTar(this.#directory, [...files, 'manifest.json'], this.#file, signal);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await rm(this.#directory, { recursive: true, force: true });
  }

  #nameFor(tag: Tag | undefined): string | undefined {
    if (this.#selection.name !== undefined) return this.#selection.name;
    if (tag === undefined || this.#defaultName === undefined) return undefined;
    return `${this.#defaultName}:${tag}`;
  }

  /** Decompresses a layer into `<diff_id>.tar`, checking that its content is what the config says. */
  async #storeLayer(layer: Descriptor, diffId: Digest, signal: AbortSignal | undefined): Promise<string> {
    const target = `${hexOf(diffId)}.tar`;
    const targetPath = join(this.#directory, target);
    if (await exists(targetPath)) return target;
    const source = this.#blobs.get(layer.digest);
    if (source === undefined) throw blobNotFound(this.description, layer.digest);
    const compression = await sniffFileCompression(source);
    const hash = createHash('sha256');
    const temporary = `${targetPath}.partial`;
    await rm(temporary, { force: true });
    const stages = compression === 'none' ? [] : [decompressor(compression)];
    await writeDurably(temporary, createReadStream(source), [...stages, new MeteredStream(hash)], signal);
    const actual = finishDigest(hash, 'sha256');
    if (actual !== diffId) {
      await rm(temporary, { force: true });
      throw new RegistryError('DIGEST_INVALID', `${this.description}: layer ${layer.digest} unpacks to ${actual}, but the config's diff_id is ${diffId}`);
    }
    await rename(temporary, targetPath);
    return target;
  }

  #select(tag: Tag | undefined): number | undefined {
    const { name, index } = this.#selection;
    if (index !== undefined) return index < this.#entries.length ? index : undefined;
    const byName = (wanted: (repoTag: string) => boolean) => {
      const found = this.#entries.findIndex((entry) => (entry.RepoTags ?? []).some(wanted));
      return found === -1 ? undefined : found;
    };
    if (name !== undefined) return byName((repoTag) => repoTag === name || repoTag === `docker.io/${name}` || repoTag === `docker.io/library/${name}`);
    if (tag !== undefined) return byName((repoTag) => repoTag.slice(repoTag.lastIndexOf(':') + 1) === tag);
    return this.#entries.length === 1 ? 0 : undefined;
  }

  /** The manifest for an archived image: OCI, config as stored, each layer typed by its bytes. */
  async #image(index: number, signal: AbortSignal | undefined): Promise<SynthesizedImage> {
    const cached = this.#images.get(index);
    if (cached !== undefined) return cached;
    const entry = this.#entries[index] as ArchiveEntry;
    const blobs = new Map<Digest, string>();
    const configPath = this.#archivePath(entry.Config);
    if ((await stat(configPath)).size > maxConfigBytes) throw new RegistryError('MANIFEST_INVALID', `${this.description}: ${entry.Config} is too large for an image config`);
    const configBytes = await readFile(configPath);
    const config: Descriptor = { mediaType: mediaTypes.ociConfig, digest: digestOf(configBytes), size: configBytes.length };
    blobs.set(config.digest, configPath);
    const layers: Descriptor[] = [];
    for (const layerFile of entry.Layers) {
      const path = this.#archivePath(layerFile);
      const { digest, size } = await digestStream(createReadStream(path, signal === undefined ? {} : { signal }), 'sha256');
      layers.push({ mediaType: layerMediaType(await sniffFileCompression(path), false), digest, size });
      blobs.set(digest, path);
    }
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers }));
    const image: SynthesizedImage = { manifest: { digest: digestOf(bytes), mediaType: mediaTypes.ociManifest, bytes }, blobs };
    for (const [digest, path] of blobs) this.#blobs.set(digest, path);
    this.#images.set(index, image);
    return image;
  }

  #archivePath(relative: string): string {
    const normalized = posix.normalize(relative);
    if (posix.isAbsolute(normalized) || normalized.split('/').includes('..')) {
      throw new RegistryError('MANIFEST_INVALID', `${this.description}: manifest.json names "${relative}", outside the archive`);
    }
    return join(this.#directory, ...normalized.split('/'));
  }
}

async function readEntries(directory: string, file: string): Promise<ArchiveEntry[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8'));
  } catch (cause) {
    throw new RegistryError('MANIFEST_INVALID', `${file}: not a docker archive (no readable manifest.json)`, { cause });
  }
  if (!Array.isArray(parsed)) throw new RegistryError('MANIFEST_INVALID', `${file}: manifest.json must be a list of images`);
  return parsed.map((entry: unknown, index) => {
    const value = entry as Partial<ArchiveEntry>;
    if (typeof value.Config !== 'string' || !Array.isArray(value.Layers) || !value.Layers.every((layer) => typeof layer === 'string')) {
      throw new RegistryError('MANIFEST_INVALID', `${file}: manifest.json entry ${index} needs Config and Layers`);
    }
    return { Config: value.Config, RepoTags: Array.isArray(value.RepoTags) ? value.RepoTags.filter((name) => typeof name === 'string') : null, Layers: value.Layers };
  });
}
