import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { digestOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';

/** A real tar of the given files, in memory (test files are small). */
async function tarOf(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of pack) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Writes an OCI image layout holding one runnable-looking image (a real
 * gzipped tar layer, a config whose diff_ids match it) under `tag`, as
 * skopeo, podman and buildah read it.
 */
export async function writeOciLayout(directory: string, tag: string, files: Record<string, string>): Promise<{ manifestDigest: string }> {
  const layerTar = await tarOf(files);
  const layer = gzipSync(layerTar);
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(layerTar).digest('hex')}`] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: digestOf(layer), size: layer.length }],
    }),
  );
  const blobs = join(directory, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  for (const bytes of [layer, config, manifest]) await writeFile(join(blobs, digestOf(bytes).slice('sha256:'.length)), bytes);
  await writeFile(join(directory, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    join(directory, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: mediaTypes.ociManifest, digest: digestOf(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { manifestDigest: digestOf(manifest) };
}
