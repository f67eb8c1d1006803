import { randomBytes } from 'node:crypto';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';

export interface TestBlob {
  digest: Digest;
  bytes: Buffer;
  mediaType: string;
}

export interface TestManifest {
  digest: Digest;
  bytes: Buffer;
  mediaType: string;
}

export interface TestImage {
  config: TestBlob;
  layers: TestBlob[];
  manifest: TestManifest;
}

export function blobOf(bytes: Buffer, mediaType: string = mediaTypes.ociLayerGzip): TestBlob {
  return { digest: digestOf(bytes), bytes, mediaType };
}

export function manifestOf(value: unknown, mediaType: string): TestManifest {
  const bytes = Buffer.from(JSON.stringify(value));
  return { digest: digestOf(bytes), bytes, mediaType };
}

function descriptor(item: { digest: Digest; bytes: Buffer; mediaType: string }, extra: Record<string, unknown> = {}) {
  return { mediaType: item.mediaType, digest: item.digest, size: item.bytes.length, ...extra };
}

/**
 * An image of random layers (their bytes are not tars: the protocol does
 * not look inside). Each call differs, so tests never collide.
 */
export function randomImage(
  options: { layers?: number; layerSize?: number; docker?: boolean; subject?: TestManifest; artifactType?: string; annotations?: Record<string, string> } = {},
): TestImage {
  const docker = options.docker === true;
  const config = blobOf(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomBytes(8).toString('hex') })),
    docker ? mediaTypes.dockerConfig : mediaTypes.ociConfig,
  );
  const layers = Array.from({ length: options.layers ?? 2 }, () => blobOf(randomBytes(options.layerSize ?? 1024), docker ? mediaTypes.dockerLayerGzip : mediaTypes.ociLayerGzip));
  const mediaType = docker ? mediaTypes.dockerManifest : mediaTypes.ociManifest;
  const body: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(config),
    layers: layers.map((layer) => descriptor(layer)),
  };
  if (options.artifactType !== undefined) body['artifactType'] = options.artifactType;
  if (options.subject !== undefined) body['subject'] = descriptor(options.subject);
  if (options.annotations !== undefined) body['annotations'] = options.annotations;
  return { config, layers, manifest: manifestOf(body, mediaType) };
}

/** An index over images, each given a platform. */
export function imageIndex(entries: { image: TestImage; os: string; architecture: string }[], docker = false): TestManifest {
  const mediaType = docker ? mediaTypes.dockerManifestList : mediaTypes.ociIndex;
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      manifests: entries.map(({ image, os, architecture }) => descriptor(image.manifest, { platform: { os, architecture } })),
    },
    mediaType,
  );
}

/** Pushes one blob monolithically (POST ?digest=). */
export async function pushBlob(url: string, repository: string, blob: { digest: Digest; bytes: Buffer }, authorization?: string): Promise<void> {
  const response = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', ...(authorization === undefined ? {} : { authorization }) },
    body: blob.bytes,
  });
  if (response.status !== 201) throw new Error(`blob push failed: ${response.status} ${await response.text()}`);
}

export async function pushManifest(url: string, repository: string, reference: string, manifest: TestManifest, authorization?: string): Promise<Response> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': manifest.mediaType, ...(authorization === undefined ? {} : { authorization }) },
    body: manifest.bytes,
  });
  if (response.status !== 201) throw new Error(`manifest push failed: ${response.status} ${await response.text()}`);
  return response;
}

/** Pushes an image's blobs and manifest, tagged `reference` (with these credentials, when given). */
export async function pushImage(url: string, repository: string, reference: string, image: TestImage, authorization?: string): Promise<void> {
  for (const blob of [image.config, ...image.layers]) await pushBlob(url, repository, blob, authorization);
  await pushManifest(url, repository, reference, image.manifest, authorization);
}
