import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { isRegistryError, RegistryError } from '../../errors/registry-error.ts';
import { checkDigest } from '../../io/digest-check.ts';
import { VerifiedBlobStream } from '../../io/metered-stream.ts';
import { algorithmOf, digestOf, hexOf, tryParseDigest, type Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { isIndexMediaType, isManifestMediaType } from '../../oci/media-types.ts';
import type { Reference, Tag } from '../../oci/names.ts';
import type { CopyOptions } from '../copy-image.ts';
import type { ImageStore, ManifestData } from '../image-store.ts';
import { LocationError } from '../location.ts';
import { choosePlatform, formatPlatform, hostPlatform, type Platform } from '../platform.ts';
import type { DockerDaemon } from './docker-daemon.ts';
import { daemonFailure, readText } from './engine-client.ts';
import { chainIdsOf, readSmallBytes } from './image-export.ts';

export type IntoDaemonResult =
  | { present: true; imageId: Digest; tagged: boolean }
  | { present: false; imageId: Digest; digest: Digest; mediaType: string; copied: number; mounted: number; skipped: number; bytes: number };

/**
 * Loads one image from `source` into the daemon as NAME:TAG through
 * `POST /images/load`, generating the `docker save` archive as it is sent:
 * the config, each layer blob as the source has it (the daemon unpacks
 * gzip itself), then manifest.json; nothing is staged on disk. An image
 * the daemon already has (same image ID) is not sent again, only tagged.
 */
export async function copyIntoDaemon(source: ImageStore, reference: Reference | undefined, daemon: DockerDaemon, tag: Tag, options: CopyOptions): Promise<IntoDaemonResult> {
  const { signal, onEvent } = options;
  await daemon.checkImageStore(signal);
  const manifest = await singleImage(source, reference, options);
  const parsed = JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  const config = await readSmallBytes(await source.openBlob(parsed.config, undefined, signal), 'the image config');
  checkDigest(parsed.config.digest, digestOf(config, algorithmOf(parsed.config.digest)), (actual) => `${source.description}: config ${parsed.config.digest} has digest ${actual}`);
  const imageId = parsed.config.digest;
  const existing = await daemon.inspect(imageId, signal);
  if (existing !== undefined) {
    const name = `${daemon.name}:${tag}`;
    const tagged = !existing.repoTags.some((repoTag) => repoTag === name || repoTag.endsWith(`/${name}`));
    if (tagged) await daemon.tag(imageId, tag, signal);
    return { present: true, imageId, tagged };
  }

  // Layers the daemon has (as part of the same stack) are left out of the archive: Docker's load
  // reads a layer file only when it lacks that chain. Should it fail all the same, everything is sent.
  const chains = chainIdsOf(configDiffIds(config, parsed.layers.length));
  const present = chains.length === 0 ? new Set<string>() : await daemon.layerChains(signal);
  const skip = new Set(chains.flatMap((chain, position) => (present.has(chain) ? [position] : [])));
  let stats;
  try {
    stats = await load(source, parsed.layers, imageId, config, daemon, tag, skip, options);
  } catch (error) {
    if (skip.size === 0 || signal?.aborted === true || (isRegistryError(error) && (error.code === 'DIGEST_INVALID' || error.code === 'SIZE_INVALID'))) throw error;
    stats = await load(source, parsed.layers, imageId, config, daemon, tag, new Set(), options);
  }
  const loaded = await daemon.inspect(`${daemon.name}:${tag}`, signal);
  if (loaded?.id !== imageId) throw new RegistryError('UNKNOWN', `docker-daemon: after the load, ${daemon.name}:${tag} is ${loaded?.id ?? 'missing'} instead of ${imageId}`);
  onEvent?.({ event: 'manifest-written', digest: manifest.digest, mediaType: manifest.mediaType, tag });
  return { present: false, imageId, digest: manifest.digest, mediaType: manifest.mediaType, ...stats };
}

type LoadStats = { copied: number; mounted: number; skipped: number; bytes: number };

/** One `POST /images/load` of a `docker save` archive generated as it is sent; layers at `skip` positions are left out. */
async function load(
  source: ImageStore,
  layers: readonly Descriptor[],
  imageId: Digest,
  config: Buffer,
  daemon: DockerDaemon,
  tag: Tag,
  skip: ReadonlySet<number>,
  options: CopyOptions,
): Promise<LoadStats> {
  const { signal, onEvent } = options;
  const stats: LoadStats = { copied: 0, mounted: 0, skipped: 0, bytes: 0 };
  const pack = tar.pack();
  // Its failures reach the daemon as a cut-off body and the caller through `writing`.
  pack.on('error', () => undefined);
  const writing = (async () => {
    await addEntry(pack, `${hexOf(imageId)}.json`, Readable.from([config]), config.length);
    const layerNames: string[] = [];
    for (const [position, layer] of layers.entries()) {
      const name = `${hexOf(layer.digest)}.tar`;
      layerNames.push(name);
      if (skip.has(position)) {
        stats.skipped += 1;
        onEvent?.({ event: 'blob-skipped', digest: layer.digest, size: layer.size, reason: 'exists' });
        continue;
      }
      onEvent?.({ event: 'blob-started', digest: layer.digest, size: layer.size });
      const checked = new VerifiedBlobStream(layer, 'layer', (bytes) => onEvent?.({ event: 'blob-progress', digest: layer.digest, size: layer.size, bytes }));
      const blob = (await source.openBlob(layer, undefined, signal)).pipe(checked);
      await addEntry(pack, name, blob, layer.size);
      stats.copied += 1;
      stats.bytes += layer.size;
      onEvent?.({ event: 'blob-copied', digest: layer.digest, size: layer.size, mounted: false });
    }
    const index = Buffer.from(JSON.stringify([{ Config: `${hexOf(imageId)}.json`, RepoTags: [`${daemon.name}:${tag}`], Layers: layerNames }]));
    await addEntry(pack, 'manifest.json', Readable.from([index]), index.length);
    pack.finalize();
  })();
  writing.catch((error: unknown) => pack.destroy(error as Error));
  const body = Readable.from(pack);
  const response = await daemon.client.send('POST', '/images/load?quiet=1', { body, contentType: 'application/x-tar', signal });
  const answer = await readText(response);
  const failure = loadFailure(answer);
  if (response.statusCode !== 200 || failure !== undefined) {
    // A daemon that answered early reads no more: stop generating the archive.
    body.destroy();
    await writing.catch(() => undefined);
    throw daemonFailure(daemon.client.host, `loading ${daemon.name}:${tag}`, response.statusCode, failure ?? answer);
  }
  await writing;
  return stats;
}

/** The config's diff_ids, when there is one per layer; otherwise none (and nothing is left out). */
function configDiffIds(config: Buffer, layers: number): Digest[] {
  try {
    const parsed = JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: unknown[] } };
    const diffIds = (parsed.rootfs?.diff_ids ?? []).map((value) => (typeof value === 'string' ? tryParseDigest(value) : undefined));
    return diffIds.length === layers && diffIds.every((value) => value !== undefined) ? (diffIds as Digest[]) : [];
  } catch {
    return [];
  }
}

/** The image to load: the one named, or the chosen platform's out of an index (a daemon holds one per name). */
async function singleImage(source: ImageStore, reference: Reference | undefined, options: CopyOptions): Promise<ManifestData> {
  const top = await source.getManifest(reference, options.signal);
  if (!isManifestMediaType(top.mediaType) || !isIndexMediaType(top.mediaType)) return top;
  if (options.platforms === 'all') throw new LocationError('docker-daemon: a daemon holds one platform per name; choose one with --platform (not --all)');
  const wanted: Platform = options.platforms ?? hostPlatform();
  const index = JSON.parse(Buffer.from(top.bytes).toString('utf8')) as { manifests: (Descriptor & { platform?: Partial<Platform> })[] };
  const entry = choosePlatform(index.manifests, wanted);
  if (entry === undefined) throw new RegistryError('MANIFEST_UNKNOWN', `${source.description}: the index has no ${formatPlatform(wanted)} image; use --platform`);
  options.onEvent?.({ event: 'platform-selected', digest: entry.digest, platform: formatPlatform(entry.platform as Platform) });
  return source.getManifest({ kind: 'digest', digest: entry.digest }, options.signal);
}

function addEntry(pack: tar.Pack, name: string, content: Readable, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (error) => (error ? reject(error) : resolve()));
    // The entry's own error event repeats what the callback or this listener already reported.
    entry.on('error', () => undefined);
    content.on('error', (error) => {
      entry.destroy(error);
      reject(error);
    });
    content.pipe(entry as unknown as NodeJS.WritableStream);
  });
}

/** The load's answer is JSON lines; a failure is a line with `error`. */
function loadFailure(answer: string): string | undefined {
  for (const line of answer.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const message = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
      if (message.error !== undefined) return message.errorDetail?.message ?? message.error;
    } catch {
      // podman answers with one JSON object; anything else is not an error line.
    }
  }
  return undefined;
}
