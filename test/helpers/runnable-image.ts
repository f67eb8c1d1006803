import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { tarOf } from '../sources/droplet/fixtures.ts';
import { blobOf, manifestOf, type TestImage } from './images.ts';

/**
 * An image that podman and buildah can store and build on: one real
 * gzipped tar layer holding `files`, and a config whose diff_ids match it
 * (randomImage's layers are random bytes, which only the protocol accepts).
 */
export async function runnableImage(files: Record<string, string>): Promise<TestImage> {
  const layerTar = await tarOf(Object.entries(files).map(([name, body]) => ({ name, body, mode: 0o644 })));
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
