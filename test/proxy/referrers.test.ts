import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushToDistribution, startDistribution, type Distribution } from '../helpers/distribution.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { missingCommands } from '../helpers/tools.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';
import { blobsOf, cosignArtifact } from './signatures.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

async function get(url: string): Promise<{ status: number; digest: string | null; body: Buffer }> {
  const response = await fetch(url, { headers: { accept } });
  return { status: response.status, digest: response.headers.get('docker-content-digest'), body: Buffer.from(await response.arrayBuffer()) };
}

describe('signatures travel with images: cosign tags from CNCF Distribution (no referrers API)', { skip: missingCommands('docker-registry') }, () => {
  let distribution: Distribution;
  let cache: TestRegistry;
  let stopped = false;
  before(async () => {
    distribution = await startDistribution();
    cache = await startTestRegistry({ repositories: [{ prefix: 'dist/', kind: 'proxy', upstream: distribution.url, tagTtl: 0 }] });
  });
  after(async () => {
    await cache?.close();
    if (!stopped) await distribution?.close();
  });

  test('pulling an image caches its .sig and .att with their blobs; both are readable while the upstream is down', async () => {
    const image = randomImage();
    await pushToDistribution(distribution.url, 'team/signed', '1.0', { blobs: blobsOf(image), manifest: image.manifest });
    const signature = cosignArtifact(image.manifest, 'sig');
    const attestation = cosignArtifact(image.manifest, 'att');
    for (const artifact of [signature, attestation])
      await pushToDistribution(distribution.url, 'team/signed', artifact.tag, { blobs: blobsOf(artifact), manifest: artifact.manifest });

    assert.equal((await get(`${cache.url}/v2/dist/team/signed/manifests/1.0`)).digest, image.manifest.digest);
    await cache.server.registry.proxyCaches?.idle();
    await distribution.close();
    stopped = true;

    for (const artifact of [signature, attestation]) {
      const manifest = await get(`${cache.url}/v2/dist/team/signed/manifests/${artifact.tag}`);
      assert.equal(manifest.status, 200, artifact.tag);
      assert.equal(manifest.digest, artifact.manifest.digest);
      assert.deepEqual(manifest.body, artifact.manifest.bytes);
      for (const blob of blobsOf(artifact)) {
        const body = await get(`${cache.url}/v2/dist/team/signed/blobs/${blob.digest}`);
        assert.equal(body.status, 200);
        assert.deepEqual(body.body, blob.bytes);
      }
    }
    const sbom = await get(`${cache.url}/v2/dist/team/signed/manifests/sha256-${image.manifest.digest.slice(7)}.sbom`);
    assert.equal(sbom.status, 502, 'what the upstream never had is not invented');
    const tags = (JSON.parse((await get(`${cache.url}/v2/dist/team/signed/tags/list`)).body.toString()) as { tags: string[] }).tags;
    assert.deepEqual(tags, ['1.0', attestation.tag, signature.tag].sort());
  });
});

describe("referrers travel with images: the upstream's referrers API", () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup({ tagTtl: 0 });
  });
  after(() => setup.close());

  test('an SBOM and the signature on it are cached with the image, listed and readable while the upstream is down', async () => {
    const image = randomImage();
    await pushImage(setup.upstream.url, 'team/app', 'v1', image);
    const sbom = randomImage({ layers: 1, subject: image.manifest, artifactType: 'application/spdx+json' });
    await pushImage(setup.upstream.url, 'team/app', sbom.manifest.digest, sbom);
    const signature = randomImage({ layers: 1, subject: sbom.manifest, artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' });
    await pushImage(setup.upstream.url, 'team/app', signature.manifest.digest, signature);

    assert.equal((await get(`${setup.proxy.url}/v2/up/team/app/manifests/v1`)).digest, image.manifest.digest);
    await setup.proxy.server.registry.proxyCaches?.idle();
    await setup.forwarder.close();

    const listed = JSON.parse((await get(`${setup.proxy.url}/v2/up/team/app/referrers/${image.manifest.digest}`)).body.toString()) as {
      manifests: { digest: string; artifactType?: string }[];
    };
    assert.deepEqual(
      listed.manifests.map((entry) => [entry.digest, entry.artifactType]),
      [[sbom.manifest.digest, 'application/spdx+json']],
    );
    const onSbom = JSON.parse((await get(`${setup.proxy.url}/v2/up/team/app/referrers/${sbom.manifest.digest}`)).body.toString()) as { manifests: { digest: string }[] };
    assert.deepEqual(
      onSbom.manifests.map((entry) => entry.digest),
      [signature.manifest.digest],
    );
    for (const artifact of [sbom, signature]) {
      const manifest = await get(`${setup.proxy.url}/v2/up/team/app/manifests/${artifact.manifest.digest}`);
      assert.equal(manifest.status, 200);
      assert.deepEqual(manifest.body, artifact.manifest.bytes);
      for (const blob of blobsOf(artifact)) assert.deepEqual((await get(`${setup.proxy.url}/v2/up/team/app/blobs/${blob.digest}`)).body, blob.bytes);
    }
  });
});
