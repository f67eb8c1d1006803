import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { RepositoryName } from '../../src/oci/names.ts';
import { eventually } from '../helpers/eventually.ts';
import { imageIndex, pushImage, pushManifest, randomImage, type TestImage } from '../helpers/images.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

describe('pre-warming: a schedule keeps repositories and tag patterns synced', () => {
  let setup: ProxySetup;
  const images = new Map<string, TestImage>();
  let indexDigest = '';
  let sbom: TestImage;
  before(async () => {
    setup = await startProxySetup({
      tagTtl: '1h',
      sync: { interval: '300ms', repositories: [{ name: 'team/app', tags: ['v*'] }, { name: 'team/multi' }] },
    });
    for (const tag of ['v1', 'v2', 'dev']) {
      const image = randomImage();
      images.set(tag, image);
      await pushImage(setup.upstream.url, 'team/app', tag, image);
    }
    sbom = randomImage({ layers: 1, subject: (images.get('v1') as TestImage).manifest, artifactType: 'application/spdx+json' });
    await pushImage(setup.upstream.url, 'team/app', sbom.manifest.digest, sbom);
    const amd = randomImage();
    const arm = randomImage();
    images.set('amd', amd);
    images.set('arm', arm);
    await pushImage(setup.upstream.url, 'team/multi', amd.manifest.digest, amd);
    await pushImage(setup.upstream.url, 'team/multi', arm.manifest.digest, arm);
    const index = imageIndex([
      { image: amd, os: 'linux', architecture: 'amd64' },
      { image: arm, os: 'linux', architecture: 'arm64' },
    ]);
    indexDigest = index.digest;
    await pushManifest(setup.upstream.url, 'team/multi', 'latest', index);
  });
  after(() => setup.close());

  test('matching tags, index children, referrers and every blob are cached before anyone pulls; they pull while the upstream is down', async () => {
    const { meta } = setup.proxy.server.registry;
    const expected: [string, TestImage][] = [
      ['up/team/app', images.get('v1') as TestImage],
      ['up/team/app', sbom],
      ['up/team/app', images.get('v2') as TestImage],
      ['up/team/multi', images.get('amd') as TestImage],
      ['up/team/multi', images.get('arm') as TestImage],
    ];
    const cached = async () => {
      for (const [name, image] of expected) {
        for (const blob of [image.config, ...image.layers]) if ((await meta.blobs.linkedSize(name as RepositoryName, blob.digest)) === undefined) return false;
      }
      return true;
    };
    await eventually(cached, { what: 'the schedule caching everything', timeout: 15_000, interval: 100 });
    await setup.forwarder.close();
    for (const tag of ['v1', 'v2']) {
      const response = await fetch(`${setup.proxy.url}/v2/up/team/app/manifests/${tag}`, { headers: { accept } });
      assert.equal(response.headers.get('docker-content-digest'), images.get(tag)?.manifest.digest);
      await response.arrayBuffer();
    }
    const index = await fetch(`${setup.proxy.url}/v2/up/team/multi/manifests/latest`, { headers: { accept } });
    assert.equal(index.headers.get('docker-content-digest'), indexDigest);
    await index.arrayBuffer();
    for (const [name, image] of expected) {
      for (const blob of [image.config, ...image.layers]) {
        const response = await fetch(`${setup.proxy.url}/v2/${name}/blobs/${blob.digest}`);
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob.bytes));
      }
    }
    const referrers = await fetch(`${setup.proxy.url}/v2/up/team/app/referrers/${images.get('v1')?.manifest.digest}`);
    const listed = (await referrers.json()) as { manifests: { digest: string; artifactType?: string }[] };
    assert.deepEqual(
      listed.manifests.map((entry) => [entry.digest, entry.artifactType]),
      [[sbom.manifest.digest, 'application/spdx+json']],
      'the SBOM of a synced image was synced with it',
    );
    const sbomManifest = await fetch(`${setup.proxy.url}/v2/up/team/app/manifests/${sbom.manifest.digest}`, { headers: { accept } });
    assert.deepEqual(Buffer.from(await sbomManifest.arrayBuffer()), sbom.manifest.bytes);
    const dev = await fetch(`${setup.proxy.url}/v2/up/team/app/manifests/dev`, { headers: { accept } });
    assert.equal(dev.status, 502, 'a tag outside the patterns was not synced');
    await dev.arrayBuffer();
  });
});

describe('pre-warming has one leader across replicas', () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup({ sync: { interval: '1h', repositories: [{ name: 'team/app', tags: ['*'] }] } });
    await pushImage(setup.upstream.url, 'team/app', '1', randomImage());
  });
  after(() => setup.close());

  test("while another holds the cache's sync lease, a run does nothing; then it syncs", async () => {
    const { registry } = setup.proxy.server;
    const warmer = registry.proxyCaches?.warmers.get('up/');
    assert.ok(warmer !== undefined);
    const held = await registry.operations.store.leases.acquire('proxy-sync:up/');
    assert.ok(held !== undefined);
    assert.equal(await warmer.run(), undefined);
    assert.equal(setup.forwarder.requests.length, 0);
    await held.release();
    const report = await warmer.run();
    assert.equal(report?.images, 1);
    assert.equal(report?.failed, 0);
  });
});
