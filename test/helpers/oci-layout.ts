import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hexOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { TestImage } from './images.ts';

/** Writes `image` as an OCI image layout in `dir`, its manifest named `tag` (for `skopeo copy oci:DIR:TAG …`). */
export async function writeOciLayout(dir: string, image: TestImage, tag: string): Promise<void> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const item of [image.config, ...image.layers, image.manifest]) {
    await writeFile(join(dir, 'blobs', 'sha256', hexOf(item.digest)), item.bytes);
  }
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = {
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    manifests: [
      {
        mediaType: image.manifest.mediaType,
        digest: image.manifest.digest,
        size: image.manifest.bytes.length,
        annotations: { 'org.opencontainers.image.ref.name': tag },
      },
    ],
  };
  await writeFile(join(dir, 'index.json'), JSON.stringify(index));
}
