import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { ManifestRecord } from '../../meta/meta-store.ts';
import { MeteredStream } from '../../io/metered-stream.ts';
import { finishDigest, hexOf, tryParseDigest, type Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { isIndexMediaType, isManifestMediaType } from '../../oci/media-types.ts';
import { isTag, type Reference, type Tag } from '../../oci/names.ts';
import { ArchiveFormatError, parseJsonFile, type BlobLocation } from '../../archives/archive-contents.ts';
import { parseDockerArchiveImages, readDockerArchive } from '../../archives/docker-archive.ts';
import { decompressor, sniffFileCompression } from '../compression.ts';
import { writeDurably } from '../../io/durable-file.ts';
import {
  blobNotFound,
  manifestNotFound,
  sourceMissing,
  type BlobOpener,
  type ImageStore,
  type ManifestData,
  type PutBlobOptions,
  type PutManifestOptions,
} from '../image-store.ts';
import { DirectoryStorage, fileOpener } from './layout-dir.ts';
import { packTar, type PackedFile } from './tar.ts';
import { TarArchive } from './tar-archive.ts';

/** One image in manifest.json, as `docker save` writes it. */
interface ArchiveEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

/** What reading the archive found: the archive kind's Docker schema 2 manifests, by image. */
interface ArchiveImages {
  manifests: Map<Digest, ManifestRecord>;
  blobs: Map<Digest, BlobLocation>;
  images: { digest: Digest; names: string[] }[];
}

const maxManifestBytes = 4 * 1024 * 1024;

/**
 * The `docker save` / `docker load` format (also podman's and skopeo's
 * `docker-archive:`): manifest.json listing each image's config file,
 * names and layer tars. Read in place, each image appears as the Docker
 * schema 2 manifest the archive kind serves for it (layers typed by what
 * their bytes are). Written layers are decompressed, checked against the
 * config's diff_ids and stored as `<diff_id>.tar`; commit packs them with
 * what the archive already held into a new archive.
 */
export class DockerArchiveStore implements ImageStore {
  readonly description: string;
  readonly storesUncompressedLayers = true;
  readonly #file: string;
  readonly #directory: string;
  readonly #archive: TarArchive | undefined;
  readonly #incoming: DirectoryStorage;
  readonly #selection: { name?: string; index?: number };
  /** The name images get when written with a tag but no full name (`<defaultName>:<tag>`). */
  readonly #defaultName: string | undefined;
  #entries: ArchiveEntry[] = [];
  #read: Promise<ArchiveImages> | undefined;
  /** Blobs written in this session, by digest. */
  readonly #written = new Map<Digest, string>();
  #dirty = false;

  private constructor(file: string, directory: string, archive: TarArchive | undefined, selection: { name?: string; index?: number }, defaultName: string | undefined) {
    this.#file = file;
    this.#directory = directory;
    this.#archive = archive;
    this.#selection = selection;
    this.#defaultName = defaultName;
    this.description = `docker-archive:${file}`;
    this.#incoming = new DirectoryStorage(directory, this.description);
  }

  static async open(file: string, options: { tempRoot: string; name?: string; index?: number; defaultName?: string }, signal?: AbortSignal): Promise<DockerArchiveStore> {
    const archive = await TarArchive.open(file, options.tempRoot, signal);
    const directory = await mkdtemp(join(options.tempRoot, 'berth-docker-archive-'));
    const selection = { ...(options.name === undefined ? {} : { name: options.name }), ...(options.index === undefined ? {} : { index: options.index }) };
    const store = new DockerArchiveStore(file, directory, archive, selection, options.defaultName ?? options.name?.replace(/:[^:/]+$/, ''));
    try {
      if (archive !== undefined) store.#entries = await store.#archived(async () => readEntries(archive));
    } catch (error) {
      await store.close();
      throw error;
    }
    return store;
  }

  async getManifest(reference: Reference | undefined): Promise<ManifestData> {
    this.#mustExist();
    const { manifests, images } = await this.#images();
    let digest: Digest | undefined;
    if (reference?.kind === 'digest') digest = manifests.has(reference.digest) ? reference.digest : undefined;
    else digest = this.#select(images, reference?.tag);
    const record = digest === undefined ? undefined : manifests.get(digest);
    if (record === undefined) throw manifestNotFound(this.description, this.#selection.name ?? reference);
    return { digest: record.digest, mediaType: record.mediaType, bytes: record.bytes };
  }

  async openBlob(descriptor: Descriptor, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const written = this.#written.get(descriptor.digest);
    if (written !== undefined) return fileOpener(written)(range);
    const location = (await this.#images()).blobs.get(descriptor.digest);
    if (location?.kind !== 'range' || this.#archive === undefined) throw blobNotFound(this.description, descriptor.digest);
    return this.#archive.readAt(location, range, signal);
  }

  async listTags(): Promise<Tag[]> {
    this.#mustExist();
    const tags = this.#entries.flatMap((entry) => (entry.RepoTags ?? []).map((name) => name.slice(name.lastIndexOf(':') + 1)));
    return [...new Set(tags.filter(isTag))].sort();
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    return this.#written.has(descriptor.digest);
  }

  async putBlob(descriptor: Descriptor, openBlob: BlobOpener, options: PutBlobOptions = {}): Promise<'copied'> {
    await this.#incoming.writeBlob(`incoming/${hexOf(descriptor.digest)}`, openBlob, descriptor, options.onProgress, options.signal);
    this.#written.set(descriptor.digest, join(this.#directory, 'incoming', hexOf(descriptor.digest)));
    return 'copied';
  }

  async putManifest(manifest: ManifestData, tag: Tag | undefined, options: PutManifestOptions = {}): Promise<void> {
    if (options.child === true || !isManifestMediaType(manifest.mediaType) || isIndexMediaType(manifest.mediaType)) {
      throw new RegistryError('UNSUPPORTED', `${this.description}: a docker archive holds single-platform images; choose one with --platform (not --all)`);
    }
    const parsed = JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
    const configPath = this.#written.get(parsed.config.digest);
    if (configPath === undefined) throw blobNotFound(this.description, parsed.config.digest);
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { rootfs?: { diff_ids?: unknown } };
    const diffIds = Array.isArray(config.rootfs?.diff_ids) ? (config.rootfs.diff_ids as unknown[]) : [];
    if (diffIds.length !== parsed.layers.length) {
      throw new RegistryError(
        'MANIFEST_INVALID',
        `${this.description}: the image config lists ${diffIds.length} diff_ids for ${parsed.layers.length} layers; docker load would refuse it`,
      );
    }
    const configFile = `${hexOf(parsed.config.digest)}.json`;
    await copyFile(configPath, join(this.#directory, configFile));
    const layers: string[] = [];
    for (const [position, layer] of parsed.layers.entries()) {
      const diffId = tryParseDigest(String(diffIds[position]));
      if (diffId === undefined) throw new RegistryError('MANIFEST_INVALID', `${this.description}: diff_ids[${position}] is not a digest`);
      layers.push(await this.#storeLayer(layer, diffId, options.signal));
    }
    this.#record({ Config: configFile, RepoTags: null, Layers: layers }, this.#nameFor(tag));
    this.#dirty = true;
  }

  async commit(signal?: AbortSignal): Promise<void> {
    if (!this.#dirty) return;
    await writeFile(join(this.#directory, 'manifest.json'), JSON.stringify(this.#entries));
    const names = [...new Set(this.#entries.flatMap((entry) => [entry.Config, ...entry.Layers])), 'manifest.json'];
    await packTar(await Promise.all(names.map((name) => this.#packed(name))), this.#file, signal);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await this.#archive?.close();
    await rm(this.#directory, { recursive: true, force: true });
  }

  /** Adds an image under `name`, which moves off any image that had it; an image left nameless by that goes. */
  #record(image: ArchiveEntry, name: string | undefined): void {
    if (name !== undefined) {
      this.#entries = this.#entries.filter((entry) => {
        const before = entry.RepoTags ?? [];
        entry.RepoTags = before.filter((existing) => existing !== name);
        return entry.RepoTags.length > 0 || before.length === 0;
      });
    }
    const same = this.#entries.find((entry) => entry.Config === image.Config && entry.Layers.join() === image.Layers.join());
    if (same !== undefined) {
      if (name !== undefined) same.RepoTags = [...(same.RepoTags ?? []), name];
      return;
    }
    this.#entries.push({ ...image, RepoTags: name === undefined ? null : [name] });
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
    if (this.#archive?.entries.has(target) === true || (await stat(targetPath).catch(() => undefined)) !== undefined) return target;
    const source = this.#written.get(layer.digest);
    if (source === undefined) throw blobNotFound(this.description, layer.digest);
    const compression = await sniffFileCompression(source);
    const hash = createHash('sha256');
    const temporary = `${targetPath}.partial`;
    await rm(temporary, { force: true });
    await writeDurably(temporary, createReadStream(source), [...(compression === 'none' ? [] : [decompressor(compression)]), new MeteredStream(hash)], signal);
    const actual = finishDigest(hash, 'sha256');
    if (actual !== diffId) {
      await rm(temporary, { force: true });
      throw new RegistryError('DIGEST_INVALID', `${this.description}: layer ${layer.digest} unpacks to ${actual}, but the config's diff_id is ${diffId}`);
    }
    await rename(temporary, targetPath);
    return target;
  }

  /** A file of the new archive: written in this session, or carried over from the old archive. */
  async #packed(name: string): Promise<PackedFile> {
    const path = join(this.#directory, ...name.split('/'));
    const size = (await stat(path).catch(() => undefined))?.size;
    if (size !== undefined) return { name, size, open: () => createReadStream(path, { highWaterMark: 1024 * 1024 }) };
    const entry = this.#archive?.entries.get(name);
    if (entry === undefined) throw new RegistryError('MANIFEST_INVALID', `${this.description}: manifest.json names ${name}, which the archive lacks`);
    const archive = this.#archive as TarArchive;
    return { name, size: entry.size, open: () => archive.readAt(entry) };
  }

  #select(images: ArchiveImages['images'], tag: Tag | undefined): Digest | undefined {
    const { name, index } = this.#selection;
    if (index !== undefined) return images[index]?.digest;
    const byName = (wanted: (name: string) => boolean) => images.find((image) => image.names.some(wanted))?.digest;
    if (name !== undefined) return byName((candidate) => candidate === name || candidate === `docker.io/${name}` || candidate === `docker.io/library/${name}`);
    if (tag !== undefined) return byName((candidate) => candidate.slice(candidate.lastIndexOf(':') + 1) === tag);
    return images.length === 1 ? images[0]?.digest : undefined;
  }

  /** Read as a source, an archive that is not there is named as such (written to, it is created). */
  #mustExist(): void {
    if (this.#archive === undefined && !this.#dirty) throw sourceMissing(this.description, 'file');
  }

  #images(): Promise<ArchiveImages> {
    const archive = this.#archive;
    if (archive === undefined) return Promise.resolve({ manifests: new Map(), blobs: new Map(), images: [] });
    this.#read ??= this.#archived(() => readDockerArchive(archive.contents, maxManifestBytes));
    return this.#read;
  }

  /** The archive kind's readers throw their own error type; here it is a bad source. */
  async #archived<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof ArchiveFormatError) throw new RegistryError('MANIFEST_INVALID', `${this.description}: ${error.message}`, { cause: error });
      throw error;
    }
  }
}

async function readEntries(archive: TarArchive): Promise<ArchiveEntry[]> {
  const bytes = await archive.readFile('manifest.json', maxManifestBytes);
  if (bytes === undefined) throw new ArchiveFormatError('not a docker archive (no manifest.json)');
  return parseDockerArchiveImages(parseJsonFile(bytes, 'manifest.json')).map((image) => ({
    Config: image.config,
    RepoTags: image.repoTags.length === 0 ? null : image.repoTags,
    Layers: image.layers,
  }));
}
