import { randomBytes } from 'node:crypto';
import { blobOf, manifestOf, type TestBlob, type TestImage, type TestManifest } from '../helpers/images.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';

/** What cosign stores for a signature in a registry without a referrers API: a small image under `sha256-<hex>.sig`. */
export interface CosignArtifact {
  tag: string;
  config: TestBlob;
  layers: TestBlob[];
  manifest: TestManifest;
}

export function cosignArtifact(subject: TestManifest, suffix: 'sig' | 'att' | 'sbom'): CosignArtifact {
  const config = blobOf(Buffer.from(JSON.stringify({ architecture: '', os: '', rootfs: { type: 'layers', diff_ids: [] } })), mediaTypes.ociConfig);
  const payload = blobOf(
    Buffer.from(
      JSON.stringify({
        critical: { image: { 'docker-manifest-digest': subject.digest }, type: 'cosign container image signature' },
        optional: { nonce: randomBytes(8).toString('hex') },
      }),
    ),
    suffix === 'sig' ? 'application/vnd.dev.cosign.simplesigning.v1+json' : 'application/vnd.dsse.envelope.v1+json',
  );
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
      layers: [
        {
          mediaType: payload.mediaType,
          digest: payload.digest,
          size: payload.bytes.length,
          annotations: { 'dev.cosignproject.cosign/signature': randomBytes(64).toString('base64') },
        },
      ],
    },
    mediaTypes.ociManifest,
  );
  return { tag: `sha256-${subject.digest.slice('sha256:'.length)}.${suffix}`, config, layers: [payload], manifest };
}

export function blobsOf(image: TestImage | CosignArtifact): TestBlob[] {
  return [image.config, ...image.layers];
}
