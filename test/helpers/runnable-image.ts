import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { blobOf, manifestOf, type TestImage } from './images.ts';

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
 * An image that podman and buildah can store and build on: one real
 * gzipped tar layer holding `files`, and a config whose diff_ids match it
 * (randomImage's layers are random bytes, which only the protocol accepts).
 */
export async function runnableImage(files: Record<string, string>): Promise<TestImage> {
  const layerTar = await tarOf(files);
  const layer = blobOf(gzipSync(layerTar), mediaTypes.ociLayerGzip);
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: [`sha256:${createHash('sha256').update(layerTar).digest('hex')}`] },
      }),
    ),
    mediaTypes.ociConfig,
  );
  const descriptor = (blob: { digest: string; bytes: Buffer; mediaType: string }) => ({ mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length });
  const manifest = manifestOf({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptor(config), layers: [descriptor(layer)] }, mediaTypes.ociManifest);
  return { config, layers: [layer], manifest };
}
