import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { once } from 'node:events';
import tar from 'tar-stream';
import type { Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { blobOf, manifestOf, type TestBlob, type TestImage } from '../helpers/images.ts';

/** A tar holding one file of random content: a real layer that docker load and umoci accept. */
export async function randomTar(size = 2048): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = once(pack, 'end');
  pack.entry({ name: `file-${randomBytes(6).toString('hex')}.bin`, mode: 0o644, mtime: new Date(0) }, randomBytes(size));
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A runnable-looking image: gzip layers of real tars and a config whose
 * diff_ids are right, so every transport (docker-archive included) and
 * every outside tool accepts it.
 */
export async function realImage(options: { layers?: number; docker?: boolean; architecture?: string; layerSize?: number } = {}): Promise<TestImage & { diffIds: Digest[] }> {
  const docker = options.docker === true;
  const tars = await Promise.all(Array.from({ length: options.layers ?? 2 }, () => randomTar(options.layerSize)));
  const diffIds = tars.map((bytes) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest);
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: options.architecture ?? 'amd64',
        os: 'linux',
        config: { Env: ['PATH=/bin'] },
        rootfs: { type: 'layers', diff_ids: diffIds },
        history: diffIds.map(() => ({ created_by: 'berth test' })),
      }),
    ),
    docker ? mediaTypes.dockerConfig : mediaTypes.ociConfig,
  );
  const layers: TestBlob[] = tars.map((bytes) => blobOf(gzipSync(bytes), docker ? mediaTypes.dockerLayerGzip : mediaTypes.ociLayerGzip));
  const mediaType = docker ? mediaTypes.dockerManifest : mediaTypes.ociManifest;
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
      layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.length })),
    },
    mediaType,
  );
  return { config, layers, manifest, diffIds };
}
