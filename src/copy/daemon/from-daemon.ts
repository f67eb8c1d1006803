import { checkDigest } from '../../io/digest-check.ts';
import { Readable } from 'node:stream';
import { RegistryError } from '../../errors/registry-error.ts';
import { digestOf, type Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import type { Tag } from '../../oci/names.ts';
import type { CopyOptions, CopyResult } from '../copy-image.ts';
import type { ImageStore, ManifestData } from '../image-store.ts';
import { serialize } from '../oci-conversion.ts';
import type { DaemonImage, DockerDaemon } from './docker-daemon.ts';
import { drain, onceOpener, readImageExport, readSmallBytes, type ExportEntry } from './image-export.ts';

export type DaemonCopyResult = CopyResult | { upToDate: true; digest: Digest };

/**
 * Copies NAME:TAG out of the daemon into `destination`, streaming the
 * daemon's export once: each file's identity is known from its tar header
 * (see readImageExport), so what the destination holds is skipped, neither
 * hashed nor written (the Engine API exports whole images, so its bytes
 * still pass by), and the rest goes straight into the destination with no
 * file in between. Layers travel as the plain tars
 * the daemon exports (their digest is their diff_id, known before they are
 * read); the manifest is Docker schema 2, or OCI for layouts. When the
 * destination's tag already names that image, nothing is exported.
 */
export async function copyFromDaemon(daemon: DockerDaemon, tag: Tag, destination: ImageStore, destinationTag: Tag | undefined, options: CopyOptions): Promise<DaemonCopyResult> {
  const { signal, onEvent } = options;
  const image = await daemon.require(tag, signal);
  const oci = destination.requiresOci === true;
  const current = destinationTag === undefined ? undefined : await destination.getManifest({ kind: 'tag', tag: destinationTag }, signal).catch(() => undefined);
  if (current !== undefined && holdsImage(current, image)) return { upToDate: true, digest: current.digest };

  const stats = { copied: 0, mounted: 0, skipped: 0, bytes: 0 };
  const layers = new Map<Digest, Descriptor>();
  let config: Descriptor | undefined;
  const layerType = oci ? mediaTypes.ociLayerTar : mediaTypes.dockerLayerTar;

  const store = async (descriptor: Descriptor, stream: Readable): Promise<void> => {
    if (await destination.hasBlob(descriptor, signal)) {
      stats.skipped += 1;
      onEvent?.({ event: 'blob-skipped', digest: descriptor.digest, size: descriptor.size, reason: 'exists' });
      await drain(stream);
      return;
    }
    onEvent?.({ event: 'blob-started', digest: descriptor.digest, size: descriptor.size });
    await destination.putBlob(descriptor, onceOpener(stream, descriptor.size), {
      ...(onEvent === undefined ? {} : { onProgress: (bytes: number) => onEvent({ event: 'blob-progress', digest: descriptor.digest, size: descriptor.size, bytes }) }),
      signal,
    });
    stats.copied += 1;
    stats.bytes += descriptor.size;
    onEvent?.({ event: 'blob-copied', digest: descriptor.digest, size: descriptor.size, mounted: false });
  };

  const pass = async (known: Map<string, Digest>): Promise<Map<string, Digest>> => {
    const reader = readImageExport(await exportStream(daemon, tag, signal), image);
    try {
      return await walk(reader, known);
    } finally {
      // Closes the export when the walk stopped early (a failed write).
      await reader.return({ layerPaths: new Map() });
    }
  };

  const walk = async (reader: ReturnType<typeof readImageExport>, known: Map<string, Digest>): Promise<Map<string, Digest>> => {
    for (;;) {
      const next = await reader.next();
      if (next.done === true) return next.value.layerPaths;
      const entry: ExportEntry = next.value;
      if (entry.kind === 'config') {
        const bytes = await readSmallBytes(entry.stream, 'the image config');
        checkDigest(image.id, digestOf(bytes), (actual) => `docker-daemon: the exported config of ${daemon.name}:${tag} hashes to ${actual}, not to its image ID ${image.id}`);
        config = { mediaType: oci ? mediaTypes.ociConfig : mediaTypes.dockerConfig, digest: image.id, size: bytes.length };
        await store(config, Readable.from([bytes]));
        continue;
      }
      const diffId = entry.kind === 'layer' ? entry.diffId : known.get(entry.path);
      if (diffId === undefined || layers.has(diffId)) {
        await drain(entry.stream);
        continue;
      }
      const descriptor: Descriptor = { mediaType: layerType, digest: diffId, size: entry.size };
      await store(descriptor, entry.stream);
      layers.set(diffId, descriptor);
    }
  };

  const paths = await pass(new Map());
  // Layers the export named in a way only its manifest.json (at its end) explains: a second pass for those.
  if (image.diffIds.some((diffId) => !layers.has(diffId))) await pass(paths);
  const missing = image.diffIds.filter((diffId) => !layers.has(diffId));
  if (config === undefined || missing.length > 0) {
    throw new RegistryError('MANIFEST_INVALID', `docker-daemon: the export of ${daemon.name}:${tag} lacks ${config === undefined ? 'its config' : `layers ${missing.join(', ')}`}`);
  }
  const mediaType = oci ? mediaTypes.ociManifest : mediaTypes.dockerManifest;
  const manifest = serialize({ schemaVersion: 2, mediaType, config, layers: image.diffIds.map((diffId) => layers.get(diffId)) }, mediaType);
  await destination.putManifest(manifest, destinationTag, { signal });
  onEvent?.({ event: 'manifest-written', digest: manifest.digest, mediaType, ...(destinationTag === undefined ? {} : { tag: destinationTag }) });
  await destination.commit(signal);
  // A daemon keeps no signatures or SBOMs: nothing refers to what it exports.
  return { digest: manifest.digest, mediaType, ...stats, referrers: 0 };
}

/** Whether a manifest at the destination is this image: same config (image ID), same layers in order. */
function holdsImage(current: ManifestData, image: DaemonImage): boolean {
  try {
    const parsed = JSON.parse(Buffer.from(current.bytes).toString('utf8')) as { config?: Descriptor; layers?: Descriptor[] };
    return (
      parsed.config?.digest === image.id && parsed.layers?.length === image.diffIds.length && parsed.layers.every((layer, position) => layer.digest === image.diffIds[position])
    );
  } catch {
    return false;
  }
}

async function exportStream(daemon: DockerDaemon, tag: Tag, signal: AbortSignal | undefined): Promise<Readable> {
  const response = await daemon.client.send('GET', `/images/${encodeURIComponent(`${daemon.name}:${tag}`)}/get`, { signal });
  if (response.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    throw new RegistryError(response.statusCode === 404 ? 'MANIFEST_UNKNOWN' : 'UNKNOWN', `docker-daemon: exporting ${daemon.name}:${tag}: ${response.statusCode} ${text.trim()}`);
  }
  return response;
}
