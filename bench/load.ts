import { createHash, randomBytes } from 'node:crypto';

/** Runs `work` over `items` with at most `concurrency` in flight. */
export async function pool<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

async function expect(response: Response, status: number, what: string): Promise<Response> {
  if (response.status !== status) throw new Error(`${what}: ${response.status} ${(await response.text()).slice(0, 300)}`);
  return response;
}

/** Resolves a Location header against the registry (Berth answers paths, Distribution absolute URLs). */
export function resolveLocation(base: string, location: string): string {
  return new URL(location, base).toString();
}

/** Opens an upload session; the URL to PATCH or PUT to. */
export async function startUpload(base: string, repository: string, headers: Record<string, string> = {}): Promise<URL> {
  const response = await expect(await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST', headers }), 202, `start upload in ${repository}`);
  return new URL(resolveLocation(base, response.headers.get('location') ?? ''));
}

/**
 * Pushes a blob as a monolithic PUT (POST for a session, then PUT with the
 * body): CNCF Distribution 2.8 ignores `?digest=` on the POST.
 */
export async function pushBlob(base: string, repository: string, bytes: Uint8Array, headers: Record<string, string> = {}): Promise<string> {
  const digest = sha256(bytes);
  const target = await startUpload(base, repository, headers);
  target.searchParams.set('digest', digest);
  await expect(await fetch(target, { method: 'PUT', headers: { ...headers, 'content-type': 'application/octet-stream' }, body: bytes }), 201, `push blob to ${repository}`);
  return digest;
}

export async function mountBlob(base: string, repository: string, digest: string, from: string): Promise<void> {
  await expect(await fetch(`${base}/v2/${repository}/blobs/uploads/?mount=${digest}&from=${from}`, { method: 'POST' }), 201, `mount into ${repository}`);
}

export async function putManifest(base: string, repository: string, reference: string, bytes: Uint8Array, mediaType: string, headers: Record<string, string> = {}): Promise<void> {
  await expect(
    await fetch(`${base}/v2/${repository}/manifests/${reference}`, { method: 'PUT', headers: { ...headers, 'content-type': mediaType }, body: bytes }),
    201,
    `put manifest ${repository}:${reference}`,
  );
}

export interface BenchImage {
  config: Uint8Array;
  layer: Uint8Array;
  manifest: Uint8Array;
  digest: string;
  configDigest: string;
  layerDigest: string;
}

export const ociManifest = 'application/vnd.oci.image.manifest.v1+json';

/** A small OCI image (one random layer) and its manifest. */
export function benchImage(layerBytes = 2048): BenchImage {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = randomBytes(layerBytes);
  const configDigest = sha256(config);
  const layerDigest = sha256(layer);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: ociManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
    }),
  );
  return { config, layer, manifest, digest: sha256(manifest), configDigest, layerDigest };
}

export async function pushImage(base: string, repository: string, tag: string, image: BenchImage, headers: Record<string, string> = {}): Promise<void> {
  await pushBlob(base, repository, image.config, headers);
  await pushBlob(base, repository, image.layer, headers);
  await putManifest(base, repository, tag, image.manifest, ociManifest, headers);
}
