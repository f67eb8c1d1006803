import { createWriteStream } from 'node:fs';
import { mkdir, utimes } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { digestOf } from '../../../src/oci/digest.ts';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import type { TestImage, TestManifest } from '../../helpers/images.ts';

/** An image or index to put in an archive, with the tags naming it there. */
export interface ArchivedItem {
  image?: TestImage;
  /** An index and the images it lists (all stored). */
  index?: { manifest: TestManifest; images: TestImage[] };
  /** Values of org.opencontainers.image.ref.name (one descriptor each). */
  tags: string[];
}

export interface ArchiveOptions {
  gzip?: boolean;
  /** Prefix every entry path with "./" as `tar -C dir -cf x .` does. */
  dotSlash?: boolean;
  /** Modification time to set, in seconds since the epoch. */
  mtime?: number;
}

/** Writes an OCI image layout tar (what `skopeo copy … oci-archive:` makes). */
export async function writeOciArchive(path: string, items: readonly ArchivedItem[], options: ArchiveOptions = {}): Promise<void> {
  const blobs = new Map<string, Buffer>();
  const descriptors: unknown[] = [];
  const addImage = (image: TestImage) => {
    for (const blob of [image.config, ...image.layers, image.manifest]) blobs.set(blob.digest, blob.bytes);
  };
  for (const item of items) {
    const top = item.image?.manifest ?? item.index?.manifest;
    if (top === undefined) throw new Error('an archived item needs an image or an index');
    if (item.image !== undefined) addImage(item.image);
    if (item.index !== undefined) {
      item.index.images.forEach(addImage);
      blobs.set(item.index.manifest.digest, item.index.manifest.bytes);
    }
    const tags: (string | undefined)[] = item.tags.length === 0 ? [undefined] : item.tags;
    for (const tag of tags) {
      descriptors.push({
        mediaType: top.mediaType,
        digest: top.digest,
        size: top.bytes.length,
        ...(tag === undefined ? {} : { annotations: { 'org.opencontainers.image.ref.name': tag } }),
      });
    }
  }
  const entries: [string, Buffer][] = [
    ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ...[...blobs].map(([digest, bytes]): [string, Buffer] => [`blobs/${digest.replace(':', '/')}`, bytes]),
    ['index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: descriptors }))],
  ];
  await writeTar(path, entries, options);
}

/**
 * Writes a Docker archive as `docker save` does: config and layer files,
 * manifest.json with RepoTags, and a second layer path that is a symlink.
 */
export async function writeDockerArchive(path: string, image: TestImage, repoTags: string[], options: ArchiveOptions = {}): Promise<void> {
  const configName = `${image.config.digest.slice(7)}.json`;
  const layerNames = image.layers.map((layer, position) => `${position}${layer.digest.slice(7, 20)}/layer.tar`);
  const entries: [string, Buffer][] = [
    [configName, image.config.bytes],
    ...image.layers.map((layer, position): [string, Buffer] => [layerNames[position] as string, layer.bytes]),
    ['manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: [...layerNames, 'linked/layer.tar'] }]))],
  ];
  const links: [string, string][] = [['linked/layer.tar', `../${layerNames[0]}`]];
  await writeTar(path, entries, options, links);
}

/** The Docker schema 2 manifest Berth serves for a Docker archive of `image` (layers as written, uncompressed media type). */
export function dockerManifestDigestFor(image: TestImage): string {
  const layer = (bytes: Buffer) => ({ mediaType: mediaTypes.dockerLayerTar, size: bytes.length, digest: digestOf(bytes) });
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: { mediaType: mediaTypes.dockerConfig, size: image.config.bytes.length, digest: image.config.digest },
      layers: [...image.layers.map((item) => layer(item.bytes)), layer(image.layers[0]?.bytes ?? Buffer.alloc(0))],
    }),
  );
  return digestOf(bytes);
}

async function writeTar(path: string, entries: [string, Buffer][], options: ArchiveOptions, links: [string, string][] = []): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const archive = pack();
  const prefix = options.dotSlash === true ? './' : '';
  for (const [name, bytes] of entries) archive.entry({ name: prefix + name, mtime: new Date(0) }, bytes);
  for (const [name, target] of links) archive.entry({ name: prefix + name, type: 'symlink', linkname: target, mtime: new Date(0) });
  archive.finalize();
  await (options.gzip === true ? pipeline(archive, createGzip(), createWriteStream(path)) : pipeline(archive, createWriteStream(path)));
  if (options.mtime !== undefined) await utimes(path, options.mtime, options.mtime);
}

/** Sets a file's modification time (seconds since the epoch). */
export async function touch(path: string, mtime: number): Promise<void> {
  await utimes(path, mtime, mtime);
}
