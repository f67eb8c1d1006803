import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { DockerEngine } from '../helpers/dockerd.ts';
import { blobOf, manifestOf, type TestImage } from '../helpers/images.ts';
import { tarOf, type TarEntry } from '../sources/droplet/fixtures.ts';

/** An image built from plain layer tars: pushable (gzip layers) and loadable into a daemon (the tars). */
export interface LayeredImage extends TestImage {
  tars: Buffer[];
  diffIds: Digest[];
}

const sha256 = (bytes: Buffer): Digest => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;

/** A layer with static busybox as /bin/sh (and its applets used by the tests): something `docker run` can run. */
export async function busyboxLayer(): Promise<Buffer> {
  const applets = ['sh', 'cat', 'echo', 'ls'];
  return tarOf([
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/busybox', mode: 0o755, body: await readFile('/usr/bin/busybox') },
    ...applets.map((applet): TarEntry => ({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mode: 0o777 })),
  ]);
}

/** A layer holding text files. */
export function filesLayer(files: Record<string, string>): Promise<Buffer> {
  return tarOf(Object.entries(files).map(([name, body]) => ({ name, body, mode: 0o644 })));
}

/** A Docker schema 2 image over these layer tars, with `cmd` as its command. */
export function layeredImage(tars: Buffer[], cmd: string[] = ['/bin/sh'], architecture = 'amd64'): LayeredImage {
  const diffIds = tars.map(sha256);
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture,
        os: 'linux',
        config: { Env: ['PATH=/bin'], Cmd: cmd },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: diffIds.map(() => ({ created_by: 'berth test' })),
      }),
    ),
    mediaTypes.dockerConfig,
  );
  const layers = tars.map((bytes) => blobOf(gzipSync(bytes), mediaTypes.dockerLayerGzip));
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
      layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.length })),
    },
    mediaTypes.dockerManifest,
  );
  return { config, layers, manifest, tars, diffIds };
}

/** `docker load`s the image as `name` (through a `docker save` archive written in `dir`). */
export async function loadIntoDocker(engine: DockerEngine, image: LayeredImage, name: string, dir: string): Promise<void> {
  const configName = `${image.config.digest.slice(7)}.json`;
  const layerNames = image.tars.map((_, position) => `layer${position}.tar`);
  const archive = await tarOf([
    { name: configName, body: image.config.bytes },
    ...image.tars.map((body, position) => ({ name: layerNames[position] as string, body })),
    { name: 'manifest.json', body: JSON.stringify([{ Config: configName, RepoTags: [name], Layers: layerNames }]) },
  ]);
  const file = join(dir, `load-${createHash('sha256').update(name).digest('hex').slice(0, 12)}.tar`);
  await writeFile(file, archive);
  await engine.docker(['load', '-i', file]);
}

/** The image ID the daemon has under `name`. */
export async function imageId(engine: DockerEngine, name: string): Promise<string> {
  return (await engine.docker(['image', 'inspect', '--format', '{{.Id}}', name])).trim();
}
