import { checkDigest } from '../../io/digest-check.ts';
import { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { algorithmOf, digestOf, hexOf, type Digest } from '../../oci/digest.ts';
import { parseDescriptor, type Descriptor } from '../../oci/manifest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import { isTag, type Reference, type Tag } from '../../oci/names.ts';
import {
  blobNotFound,
  cosignTagsOf,
  manifestNotFound,
  sourceMissing,
  type ReferrerRef,
  type BlobOpener,
  type ImageStore,
  type ManifestData,
  type PutBlobOptions,
  type PutManifestOptions,
} from '../image-store.ts';
import { sniffManifestType } from '../../client/registry-client.ts';
import type { LayoutStorage } from './layout-storage.ts';

/** The annotation that names an image in an OCI layout (its "tag"). */
const refNameAnnotation = 'org.opencontainers.image.ref.name';
const layoutFile = 'oci-layout';
const indexFile = 'index.json';
const maxIndexBytes = 64 * 1024 * 1024;
const maxManifestBytes = 4 * 1024 * 1024;

interface LayoutIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  [other: string]: unknown;
}

/**
 * An OCI image layout (image-spec `image-layout.md`) on any LayoutStorage:
 * `oci-layout`, `index.json` naming images by the ref.name annotation, and
 * `blobs/<algorithm>/<hex>`. Blobs and manifests are written as they come;
 * index.json only at `commit`, so an interrupted copy leaves the layout as
 * it was, plus blobs that the next run skips.
 */
export class OciLayoutStore implements ImageStore {
  readonly description: string;
  /** skopeo, podman and umoci read only OCI manifests from a layout. */
  readonly requiresOci = true;
  readonly #storage: LayoutStorage;
  #index: LayoutIndex | undefined;
  #dirty = false;

  constructor(storage: LayoutStorage, description = storage.description) {
    this.#storage = storage;
    this.description = description;
  }

  async getManifest(reference: Reference | undefined, signal?: AbortSignal): Promise<ManifestData> {
    const index = await this.#loadIndex(signal, true);
    let descriptor: Descriptor | undefined;
    if (reference === undefined) {
      descriptor = index.manifests.length === 1 ? index.manifests[0] : undefined;
    } else if (reference.kind === 'tag') {
      descriptor = index.manifests.find((entry) => entry.annotations?.[refNameAnnotation] === reference.tag);
    } else {
      descriptor = index.manifests.find((entry) => entry.digest === reference.digest) ?? (await this.#describeBlob(reference.digest, signal));
    }
    if (descriptor === undefined) throw manifestNotFound(this.description, reference);
    const bytes = await this.#storage.readSmall(blobPath(descriptor.digest), maxManifestBytes, signal);
    if (bytes === undefined) throw manifestNotFound(this.description, reference);
    const digest = digestOf(bytes, algorithmOf(descriptor.digest));
    checkDigest(descriptor.digest, digest, (actual) => `${this.description}: manifest ${descriptor.digest} is corrupt (its content hashes to ${actual})`);
    return { digest, mediaType: descriptor.mediaType, bytes };
  }

  async openBlob(descriptor: Descriptor, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const stream = await this.#storage.read(blobPath(descriptor.digest), range, signal);
    if (stream === undefined) throw blobNotFound(this.description, descriptor.digest);
    return stream;
  }

  async listTags(signal?: AbortSignal): Promise<Tag[]> {
    const index = await this.#loadIndex(signal, true);
    const names = index.manifests.map((entry) => entry.annotations?.[refNameAnnotation]).filter((name): name is Tag => name !== undefined && isTag(name));
    return [...new Set(names)].sort();
  }

  /** Images of index.json whose manifest names `subject`, and those under its cosign tags. */
  async referrers(subject: Digest, signal?: AbortSignal): Promise<ReferrerRef[]> {
    const index = await this.#loadIndex(signal, true);
    const cosign = new Set<string>(cosignTagsOf(subject));
    const found: ReferrerRef[] = [];
    for (const entry of index.manifests) {
      const name = entry.annotations?.[refNameAnnotation];
      if (name !== undefined && cosign.has(name)) {
        found.push({ digest: entry.digest, tag: name as Tag });
        continue;
      }
      if (name !== undefined || entry.size > maxManifestBytes) continue;
      const bytes = await this.#storage.readSmall(blobPath(entry.digest), maxManifestBytes, signal);
      const parsed = bytes === undefined ? undefined : (JSON.parse(Buffer.from(bytes).toString('utf8')) as { subject?: { digest?: unknown } });
      if (parsed?.subject?.digest === subject) found.push({ digest: entry.digest });
    }
    return found;
  }

  async hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
    return (await this.#storage.stat(blobPath(descriptor.digest), signal)) === descriptor.size;
  }

  async putBlob(descriptor: Descriptor, open: BlobOpener, options: PutBlobOptions = {}): Promise<'copied'> {
    await this.#storage.writeBlob(blobPath(descriptor.digest), open, descriptor, options.onProgress, options.signal);
    return 'copied';
  }

  async putManifest(manifest: ManifestData, tag: Tag | undefined, options: PutManifestOptions = {}): Promise<void> {
    const { signal } = options;
    const index = await this.#loadIndex(signal, false);
    const descriptor: Descriptor = { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.byteLength };
    if (!(await this.hasBlob(descriptor, signal))) {
      await this.#storage.writeBlob(blobPath(manifest.digest), async () => readableOf(manifest.bytes), descriptor, undefined, signal);
    }
    if (options.child === true) return;
    if (tag === undefined) {
      if (!index.manifests.some((entry) => entry.digest === manifest.digest)) index.manifests.push(descriptor);
    } else {
      // A name points at one image: drop it from whatever held it before.
      index.manifests = index.manifests.filter((entry) => entry.annotations?.[refNameAnnotation] !== tag);
      index.manifests.push({ ...descriptor, annotations: { [refNameAnnotation]: tag } });
    }
    this.#dirty = true;
  }

  async commit(signal?: AbortSignal): Promise<void> {
    if (!this.#dirty || this.#index === undefined) return;
    if ((await this.#storage.stat(layoutFile, signal)) === undefined) {
      await this.#storage.writeSmall(layoutFile, Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })), signal);
    }
    await this.#storage.writeSmall(indexFile, Buffer.from(JSON.stringify(this.#index)), signal);
    this.#dirty = false;
  }

  async close(): Promise<void> {
    await this.#storage.close?.();
  }

  async #loadIndex(signal: AbortSignal | undefined, mustExist: boolean): Promise<LayoutIndex> {
    if (this.#index !== undefined) return this.#index;
    const bytes = await this.#storage.readSmall(indexFile, maxIndexBytes, signal);
    if (bytes === undefined) {
      if (mustExist) {
        const missing = await this.#storage.missing?.(signal);
        if (missing !== undefined) throw sourceMissing(this.description, missing);
        throw new RegistryError('NAME_UNKNOWN', `${this.description}: not an OCI image layout (no index.json)`);
      }
      this.#index = { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] };
      return this.#index;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(bytes.toString('utf8'));
    } catch (cause) {
      throw new RegistryError('MANIFEST_INVALID', `${this.description}: index.json is not valid JSON`, { cause });
    }
    const manifests = (parsed as { manifests?: unknown }).manifests;
    if (typeof parsed !== 'object' || parsed === null || !Array.isArray(manifests)) {
      throw new RegistryError('MANIFEST_INVALID', `${this.description}: index.json has no "manifests" list`);
    }
    this.#index = { ...(parsed as LayoutIndex), manifests: manifests.map((entry, position) => parseDescriptor(entry, `index.json manifests[${position}]`)) };
    return this.#index;
  }

  /** A manifest blob not listed in index.json (a child of an index): its type comes from its content. */
  async #describeBlob(digest: Digest, signal: AbortSignal | undefined): Promise<Descriptor | undefined> {
    const bytes = await this.#storage.readSmall(blobPath(digest), maxManifestBytes, signal);
    if (bytes === undefined) return undefined;
    return { mediaType: sniffManifestType(bytes), digest, size: bytes.length };
  }
}

export function blobPath(digest: Digest): string {
  return `blobs/${algorithmOf(digest)}/${hexOf(digest)}`;
}

function readableOf(bytes: Uint8Array): Readable {
  return Readable.from([Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)]);
}
