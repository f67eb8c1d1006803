import { RegistryError } from '../errors/registry-error.ts';
import { tryParseDigest, type Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { isForeignLayer, isIndexMediaType, isManifestMediaType, mediaTypes } from '../oci/media-types.ts';
import type { Reference, Tag } from '../oci/names.ts';
import { compressionOfMediaType, layerMediaType, type Compression } from './compression.ts';
import type { ImageStore, ManifestData } from './image-store.ts';
import { Limiter } from './limiter.ts';
import { LocationError } from './location.ts';
import { choosePlatform, formatPlatform, hostPlatform, type Platform } from './platform.ts';
import { ociEquivalent, serialize } from './oci-conversion.ts';
import { recompressLayer } from './recompress.ts';
import { fileOpener } from './transports/layout-dir.ts';

export type CopyEvent =
  | { event: 'blob-skipped'; digest: Digest; size: number; reason: 'exists' | 'foreign' }
  | { event: 'blob-started'; digest: Digest; size: number }
  | { event: 'blob-progress'; digest: Digest; size: number; bytes: number }
  | { event: 'blob-copied'; digest: Digest; size: number; mounted: boolean }
  | { event: 'layer-recompressed'; from: Digest; digest: Digest; size: number; compression: Compression }
  | { event: 'platform-selected'; digest: Digest; platform: string }
  | { event: 'manifest-written'; digest: Digest; mediaType: string; tag?: Tag }
  | { event: 'referrer-copied'; subject: Digest; digest: Digest; tag?: Tag };

export interface CopyOptions {
  /** For an index: every platform, or one (default: the host's). */
  platforms?: 'all' | Platform;
  /** Recompress every tar layer to this (rewriting manifests; configs stay valid). */
  compress?: 'gzip' | 'zstd';
  /** Compress layers that are stored uncompressed (docker-archive sources) to this. */
  compressUncompressed?: 'gzip' | 'zstd';
  /** Refuse any copy that would rewrite a manifest (recompression, Docker → OCI): the destination keeps the source's digests. */
  preserveDigests?: boolean;
  /** Blob transfers at once (default 4). */
  jobs?: number;
  /** Copy what refers to the copied manifests too: signatures, SBOMs, attestations (default true). */
  referrers?: boolean;
  /** Where recompressed layers wait before upload. */
  spoolDir: string;
  onEvent?: (event: CopyEvent) => void;
  signal?: AbortSignal;
}

export interface CopyResult {
  digest: Digest;
  mediaType: string;
  copied: number;
  mounted: number;
  skipped: number;
  bytes: number;
  /** Referrers copied (signatures, SBOMs, attestations). */
  referrers: number;
}

interface ParsedImage {
  mediaType?: string;
  config: Descriptor;
  layers: (Descriptor & { urls?: string[] })[];
}

interface ParsedIndex {
  mediaType?: string;
  manifests: (Descriptor & { platform?: Partial<Platform> })[];
}

/**
 * Copies one image (or index) from `source` to `destination`: blobs first,
 * in parallel up to the job limit, skipping those already there; then
 * manifests, children before their index, the top one under `tag`.
 */
export async function copyImage(source: ImageStore, reference: Reference | undefined, destination: ImageStore, tag: Tag | undefined, options: CopyOptions): Promise<CopyResult> {
  const copy = new ImageCopy(source, destination, options);
  const top = await source.getManifest(reference, options.signal);
  copy.fromSource(top.digest);
  const written = await copy.manifest(top, tag, true);
  await copy.referrers(copy.unchanged());
  await destination.commit(options.signal);
  return { digest: written.digest, mediaType: written.mediaType, ...copy.stats };
}

/** Copies only what refers to `subject` (sync, for an image already at the destination). */
export async function copyReferrersOf(source: ImageStore, destination: ImageStore, subject: Digest, options: CopyOptions): Promise<number> {
  const copy = new ImageCopy(source, destination, options);
  await copy.referrers([subject]);
  if (copy.stats.referrers > 0) await destination.commit(options.signal);
  return copy.stats.referrers;
}

/** Referrers of referrers (a signature of an SBOM) are followed this deep. */
const maxReferrerDepth = 2;

class ImageCopy {
  readonly stats = { copied: 0, mounted: 0, skipped: 0, bytes: 0, referrers: 0 };
  /** Manifests read from the source, and those written: the digests in both were copied unchanged. */
  readonly #read = new Set<Digest>();
  readonly #written = new Set<Digest>();
  readonly #source: ImageStore;
  readonly #destination: ImageStore;
  readonly #options: CopyOptions;
  readonly #limiter: Limiter;
  /** Blob copies by source digest: one transfer per blob, however many manifests share it. */
  readonly #blobs = new Map<Digest, Promise<Descriptor>>();

  constructor(source: ImageStore, destination: ImageStore, options: CopyOptions) {
    this.#source = source;
    this.#destination = destination;
    this.#options = options;
    this.#limiter = new Limiter(options.jobs ?? 4);
  }

  fromSource(digest: Digest): void {
    this.#read.add(digest);
  }

  /** Manifests written exactly as the source has them: what the source's referrers still refer to. */
  unchanged(): Digest[] {
    return [...this.#written].filter((digest) => this.#read.has(digest));
  }

  /**
   * Copies what refers to `subjects` at the source (and what refers to
   * that, to a small depth): each listed as an image of its own, under its
   * cosign tag when it had one. Skipped when the source cannot list
   * referrers or the destination cannot hold them (docker archives).
   */
  async referrers(subjects: readonly Digest[], depth = 0): Promise<void> {
    const source = this.#source;
    if (this.#options.referrers === false || source.referrers === undefined || this.#destination.referrers === undefined) return;
    const next: Digest[] = [];
    for (const subject of subjects) {
      for (const found of await source.referrers(subject, this.#options.signal)) {
        if (this.#written.has(found.digest)) continue;
        const reference: Reference = found.tag === undefined ? { kind: 'digest', digest: found.digest } : { kind: 'tag', tag: found.tag };
        const data = await source.getManifest(reference, this.#options.signal);
        this.#read.add(data.digest);
        await this.manifest(data, found.tag, false, true);
        this.stats.referrers += 1;
        this.#options.onEvent?.({ event: 'referrer-copied', subject, digest: data.digest, ...(found.tag === undefined ? {} : { tag: found.tag }) });
        next.push(data.digest);
      }
    }
    if (next.length > 0 && depth + 1 < maxReferrerDepth) await this.referrers(next, depth + 1);
  }

  async manifest(data: ManifestData, tag: Tag | undefined, top: boolean, referrer = false): Promise<ManifestData> {
    const child = !top && !referrer;
    if (!isManifestMediaType(data.mediaType)) {
      throw new RegistryError('MANIFEST_INVALID', `${this.#source.description}: ${data.digest} has media type ${data.mediaType}, which is not a manifest Berth copies`);
    }
    const json = JSON.parse(Buffer.from(data.bytes).toString('utf8')) as Record<string, unknown>;
    if (isIndexMediaType(data.mediaType)) {
      const index = json as unknown as ParsedIndex;
      if (top && this.#options.platforms !== 'all') return this.#platformOf(index, tag);
      return this.#index(data, index, json, tag, child);
    }
    return this.#image(data, json as unknown as ParsedImage, json, tag, child);
  }

  async #platformOf(index: ParsedIndex, tag: Tag | undefined): Promise<ManifestData> {
    const wanted = this.#options.platforms === undefined || this.#options.platforms === 'all' ? hostPlatform() : this.#options.platforms;
    const entry = choosePlatform(index.manifests, wanted);
    if (entry === undefined) {
      const available = index.manifests
        .map((item) => (item.platform?.os === undefined ? undefined : formatPlatform(item.platform as Platform)))
        .filter((item) => item !== undefined);
      throw new RegistryError(
        'MANIFEST_UNKNOWN',
        `${this.#source.description}: the index has no ${formatPlatform(wanted)} image (it has ${available.join(', ') || 'none with a platform'}); use --platform or --all`,
      );
    }
    this.#options.onEvent?.({ event: 'platform-selected', digest: entry.digest, platform: formatPlatform(entry.platform as Platform) });
    return this.manifest(await this.#child(entry), tag, true);
  }

  async #index(data: ManifestData, index: ParsedIndex, json: Record<string, unknown>, tag: Tag | undefined, child: boolean): Promise<ManifestData> {
    const toOci = data.mediaType === mediaTypes.dockerManifestList && this.#destination.requiresOci === true;
    this.#refuseRewrite(data, toOci);
    const children = await Promise.all(index.manifests.map(async (entry) => this.manifest(await this.#child(entry), undefined, false)));
    let written = data;
    if (toOci || children.some((child, position) => child.digest !== index.manifests[position]?.digest)) {
      const manifests = index.manifests.map((entry, position) => {
        const child = children[position] as ManifestData;
        return { ...entry, mediaType: child.mediaType, digest: child.digest, size: child.bytes.byteLength };
      });
      // A Docker list cannot hold OCI manifests (zstd layers, a layout's conversion): it becomes an OCI index.
      const mediaType =
        toOci || (data.mediaType === mediaTypes.dockerManifestList && children.some((child) => child.mediaType !== mediaTypes.dockerManifest))
          ? mediaTypes.ociIndex
          : data.mediaType;
      written = serialize({ ...json, ...(json['mediaType'] === undefined ? {} : { mediaType }), manifests }, mediaType);
    }
    return this.#write(written, tag, child);
  }

  async #image(data: ManifestData, image: ParsedImage, json: Record<string, unknown>, tag: Tag | undefined, child: boolean): Promise<ManifestData> {
    const docker = data.mediaType === mediaTypes.dockerManifest;
    const targets = image.layers.map((layer) => this.#targetCompression(layer));
    // Layouts are read by tools that expect OCI (skopeo, podman, umoci); Docker's format has no zstd layers.
    const toOci = docker && (targets.includes('zstd') || this.#destination.requiresOci === true);
    this.#refuseRewrite(data, toOci || targets.some((target) => target !== undefined));
    const config = await this.#blob(image.config);
    const diffIds = targets.some((target) => target !== undefined) ? await this.#diffIds(image.config) : [];
    const layers = await Promise.all(
      image.layers.map(async (layer, position) => {
        const target = targets[position];
        if (target === undefined) {
          const copied = isForeignLayer(layer.mediaType) && layer.urls !== undefined ? this.#foreign(layer) : await this.#blob(layer);
          return toOci ? { ...copied, mediaType: ociEquivalent(copied.mediaType) } : copied;
        }
        return this.#recompressed(layer, target, diffIds[position], docker && !toOci);
      }),
    );
    let written = data;
    if (toOci || layers.some((layer, position) => layer.digest !== image.layers[position]?.digest)) {
      const mediaType = toOci ? mediaTypes.ociManifest : data.mediaType;
      // The same conversion as dockerToOciManifest, which sync uses to predict it.
      const newConfig = toOci ? { ...config, mediaType: ociEquivalent(config.mediaType) } : config;
      written = serialize({ ...json, ...(json['mediaType'] === undefined && !toOci ? {} : { mediaType }), config: newConfig, layers }, mediaType);
    }
    return this.#write(written, tag, child);
  }

  #refuseRewrite(data: ManifestData, rewritten: boolean): void {
    if (!rewritten || this.#options.preserveDigests !== true) return;
    const why =
      this.#destination.requiresOci === true && (data.mediaType === mediaTypes.dockerManifest || data.mediaType === mediaTypes.dockerManifestList)
        ? `${this.#destination.description} holds OCI images, so ${data.mediaType} would be converted`
        : 'its layers would be recompressed';
    throw new LocationError(`--preserve-digests: ${data.digest} cannot be copied unchanged: ${why}`);
  }

  async #write(data: ManifestData, tag: Tag | undefined, child: boolean): Promise<ManifestData> {
    await this.#destination.putManifest(data, tag, { child, signal: this.#options.signal });
    this.#written.add(data.digest);
    this.#options.onEvent?.({ event: 'manifest-written', digest: data.digest, mediaType: data.mediaType, ...(tag === undefined ? {} : { tag }) });
    return data;
  }

  async #child(entry: Descriptor): Promise<ManifestData> {
    const child = await this.#source.getManifest({ kind: 'digest', digest: entry.digest }, this.#options.signal);
    this.#read.add(child.digest);
    return { ...child, mediaType: isManifestMediaType(child.mediaType) ? child.mediaType : entry.mediaType };
  }

  #targetCompression(layer: Descriptor): Exclude<Compression, 'none'> | undefined {
    if (this.#destination.storesUncompressedLayers === true || isForeignLayer(layer.mediaType)) return undefined;
    const current = compressionOfMediaType(layer.mediaType);
    if (current === undefined) return undefined;
    const target = this.#options.compress ?? (current === 'none' ? this.#options.compressUncompressed : undefined);
    return target === current ? undefined : target;
  }

  /** Copies a blob once, however many manifests name it. */
  #blob(descriptor: Descriptor): Promise<Descriptor> {
    let pending = this.#blobs.get(descriptor.digest);
    if (pending === undefined) {
      pending = this.#limiter.run(() => this.#transfer(descriptor)).then(() => descriptor);
      this.#blobs.set(descriptor.digest, pending);
    }
    return pending;
  }

  async #transfer(descriptor: Descriptor): Promise<void> {
    const { signal, onEvent } = this.#options;
    if (await this.#destination.hasBlob(descriptor, signal)) {
      this.stats.skipped += 1;
      onEvent?.({ event: 'blob-skipped', digest: descriptor.digest, size: descriptor.size, reason: 'exists' });
      return;
    }
    onEvent?.({ event: 'blob-started', digest: descriptor.digest, size: descriptor.size });
    const mountFrom = this.#destination.mountSource?.(this.#source);
    const outcome = await this.#destination.putBlob(descriptor, (range) => this.#source.openBlob(descriptor, range, signal), {
      ...(mountFrom === undefined ? {} : { mountFrom }),
      ...(onEvent === undefined ? {} : { onProgress: (bytes: number) => onEvent({ event: 'blob-progress', digest: descriptor.digest, size: descriptor.size, bytes }) }),
      signal,
    });
    if (outcome === 'mounted') this.stats.mounted += 1;
    else {
      this.stats.copied += 1;
      this.stats.bytes += descriptor.size;
    }
    onEvent?.({ event: 'blob-copied', digest: descriptor.digest, size: descriptor.size, mounted: outcome === 'mounted' });
  }

  #foreign(layer: Descriptor): Descriptor {
    this.stats.skipped += 1;
    this.#options.onEvent?.({ event: 'blob-skipped', digest: layer.digest, size: layer.size, reason: 'foreign' });
    return layer;
  }

  async #recompressed(layer: Descriptor, target: Exclude<Compression, 'none'>, diffId: Digest | undefined, docker: boolean): Promise<Descriptor> {
    const key = `${layer.digest}>${target}` as Digest;
    let pending = this.#blobs.get(key);
    if (pending === undefined) {
      pending = this.#limiter.run(async () => {
        const { signal } = this.#options;
        const from = compressionOfMediaType(layer.mediaType) ?? 'none';
        const spooled = await recompressLayer(await this.#source.openBlob(layer, undefined, signal), layer, from, target, diffId, this.#options.spoolDir, signal);
        try {
          const descriptor: Descriptor = { ...layer, mediaType: layerMediaType(target, docker), digest: spooled.digest, size: spooled.size };
          this.#options.onEvent?.({ event: 'layer-recompressed', from: layer.digest, digest: spooled.digest, size: spooled.size, compression: target });
          if (await this.#destination.hasBlob(descriptor, signal)) {
            this.stats.skipped += 1;
            this.#options.onEvent?.({ event: 'blob-skipped', digest: descriptor.digest, size: descriptor.size, reason: 'exists' });
          } else {
            await this.#destination.putBlob(descriptor, fileOpener(spooled.path), { signal });
            this.stats.copied += 1;
            this.stats.bytes += descriptor.size;
            this.#options.onEvent?.({ event: 'blob-copied', digest: descriptor.digest, size: descriptor.size, mounted: false });
          }
          return descriptor;
        } finally {
          await spooled.remove();
        }
      });
      this.#blobs.set(key, pending);
    }
    return pending;
  }

  /** The image config's diff_ids, to check recompressed layers against. */
  async #diffIds(config: Descriptor): Promise<(Digest | undefined)[]> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of await this.#source.openBlob(config, undefined, this.#options.signal)) {
      total += (chunk as Buffer).length;
      if (total > 16 * 1024 * 1024) throw new RegistryError('MANIFEST_INVALID', `config ${config.digest} is too large`);
      chunks.push(chunk as Buffer);
    }
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { rootfs?: { diff_ids?: unknown[] } };
    return (parsed.rootfs?.diff_ids ?? []).map((value) => (typeof value === 'string' ? tryParseDigest(value) : undefined));
  }
}
