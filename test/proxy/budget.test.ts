import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { CacheBudgets, EvictionReport } from '../../src/sources/proxy/cache-budget.ts';
import { imageIndex, manifestOf, pushImage, pushManifest, randomImage, type TestImage, type TestManifest } from '../helpers/images.ts';
import { collectorLease } from '../../src/gc/blob-guard.ts';
import { pushToDistribution, startDistribution, type Distribution } from '../helpers/distribution.ts';
import { postgresMetadataSettings, postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { missingCommands } from '../helpers/tools.ts';
import { Forwarder } from './forwarder.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

function budgetsOf(setup: ProxySetup): CacheBudgets {
  const budgets = setup.proxy.server.registry.proxyCaches?.budgets;
  assert.ok(budgets !== undefined);
  return budgets;
}

async function pullManifest(url: string, name: string, reference: string): Promise<string | null> {
  const response = await fetch(`${url}/v2/${name}/manifests/${reference}`, { headers: { accept } });
  await response.arrayBuffer();
  assert.equal(response.status, 200, `${name}:${reference}`);
  return response.headers.get('docker-content-digest');
}

async function pullBlobs(url: string, name: string, image: TestImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const response = await fetch(`${url}/v2/${name}/blobs/${blob.digest}`);
    const body = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, `${name} blob ${blob.digest}`);
    assert.ok(body.equals(blob.bytes), `${name} blob ${blob.digest}: the bytes`);
  }
}

describe('a cache with a size budget evicts the least recently pulled images', () => {
  let setup: ProxySetup;
  const images = new Map<string, TestImage>();
  before(async () => {
    // Three images of about 128 KiB; 300 KiB hold two.
    setup = await startProxySetup({ tagTtl: '1h', maxBytes: '300KiB' }, { 'proxyCache.evictionInterval': 0 });
    for (const name of ['a', 'b', 'c']) {
      const image = randomImage({ layers: 2, layerSize: 64 * 1024 });
      images.set(name, image);
      await pushImage(setup.upstream.url, `team/${name}`, '1', image);
    }
  });
  after(() => setup.close());

  test('whole images go, least recently pulled first; bytes a hosted repository shares stay; usage and metrics show it; the image comes back on the next pull', async () => {
    const [a, b, c] = ['a', 'b', 'c'].map((name) => images.get(name) as TestImage) as [TestImage, TestImage, TestImage];
    const shared = c.layers[0];
    assert.ok(shared !== undefined);
    // A hosted image of the same registry uses one of c's layers.
    const descriptor = (blob: { digest: string; bytes: Buffer; mediaType: string }) => ({ mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length });
    const keep = manifestOf({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptor(c.config), layers: [descriptor(shared)] }, mediaTypes.ociManifest);
    await pushImage(setup.proxy.url, 'local/keep', 'v1', { config: c.config, layers: [shared], manifest: keep });

    // Pulled in the order b, c, a, b: c is the least recently pulled, though b was cached first.
    for (const name of ['b', 'c', 'a', 'b']) await pullManifest(setup.proxy.url, `up/team/${name}`, '1');
    for (const [name, image] of [
      ['c', c],
      ['a', a],
      ['b', b],
    ] as const)
      await pullBlobs(setup.proxy.url, `up/team/${name}`, image);

    const reports: EvictionReport[] = await budgetsOf(setup).enforce();
    const usage = (await (await fetch(`${setup.proxy.url}/berth/usage`)).json()) as { caches: { name: string; usedBytes: number; maxBytes: number }[] };
    assert.equal(usage.caches.length, 1);
    assert.equal(usage.caches[0]?.name, 'up/');
    assert.equal(usage.caches[0]?.maxBytes, 300 * 1024);
    assert.ok((usage.caches[0]?.usedBytes ?? Infinity) <= 300 * 1024, `within budget: ${JSON.stringify(usage)} ${JSON.stringify(reports)}`);

    const tags = async (name: string) => ((await (await fetch(`${setup.proxy.url}/v2/up/team/${name}/tags/list`)).json()) as { tags?: string[] }).tags;
    const { meta, blobs } = setup.proxy.server.registry;
    assert.equal(await meta.manifests.get(`up/team/c` as never, { kind: 'digest', digest: c.manifest.digest }), undefined, 'c is gone');
    assert.equal(await blobs.stat(c.layers[1]?.digest as never), undefined, 'with the layer only it used');
    assert.equal(await blobs.stat(shared.digest), shared.bytes.length, 'the layer a hosted repository holds stays');
    const hosted = await fetch(`${setup.proxy.url}/v2/local/keep/blobs/${shared.digest}`);
    assert.ok(Buffer.from(await hosted.arrayBuffer()).equals(shared.bytes));
    for (const [name, image] of [
      ['a', a],
      ['b', b],
    ] as const) {
      assert.notEqual(await meta.manifests.get(`up/team/${name}` as never, { kind: 'digest', digest: image.manifest.digest }), undefined, `${name} stays`);
      assert.deepEqual(await tags(name), ['1']);
    }

    const metrics = await (await fetch(`${setup.proxy.url}/metrics`)).text();
    assert.match(metrics, /berth_proxy_evicted_images_total\{budget="up\/"\} [1-9]/);
    assert.match(metrics, /berth_proxy_cache_max_bytes\{budget="up\/"\} 307200/);

    const fetched = setup.forwarder.count('GET', '/v2/team/c/manifests/1');
    assert.equal(await pullManifest(setup.proxy.url, 'up/team/c', '1'), c.manifest.digest);
    await pullBlobs(setup.proxy.url, 'up/team/c', c);
    assert.equal(setup.forwarder.count('GET', '/v2/team/c/manifests/1'), fetched + 1, 'c came back from upstream');
    assert.equal(setup.forwarder.count('GET', `/blobs/${shared.digest}`), 0, 'the shared layer was kept: linked again after a HEAD, never downloaded');
  });
});

/**
 * Six clients pull six images of about 96 KiB in a loop for four seconds
 * while budgets are enforced every 20 ms; the budget holds two images.
 */
async function pullWhileEvicting(cacheUrl: string, budgets: CacheBudgets, upstream: Forwarder, images: readonly TestImage[]): Promise<void> {
  const failures: string[] = [];
  let pulls = 0;
  let evicted = 0;
  const deadline = Date.now() + 4000;
  const worker = async (seed: number) => {
    for (let round = seed; Date.now() < deadline; round++) {
      const index = (round * 7 + seed) % images.length;
      const image = images[index] as TestImage;
      try {
        assert.equal(await pullManifest(cacheUrl, `up/crowd/app${index}`, 'v1'), image.manifest.digest);
        await pullBlobs(cacheUrl, `up/crowd/app${index}`, image);
        pulls++;
      } catch (error) {
        failures.push(`app${index}: ${(error as Error).message}`);
      }
    }
  };
  const evictor = async () => {
    while (Date.now() < deadline) {
      for (const report of await budgets.enforce()) evicted += report.images;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await Promise.all([...Array.from({ length: 6 }, (_, seed) => worker(seed)), evictor()]);
  const refetched = images.reduce((total, _, index) => total + upstream.count('GET', `/v2/crowd/app${index}/manifests/v1`), 0);
  console.log(`eviction under load: ${pulls} image pulls, ${evicted} images evicted, ${refetched} manifest fetches upstream for 6 images, ${failures.length} failures`);
  assert.deepEqual(failures, []);
  assert.ok(evicted > 0, 'images were evicted while pulled');
  assert.ok(refetched > images.length, 'evicted images were fetched again');
  const final = await budgets.enforce();
  const usage = await budgets.usage();
  assert.ok((usage[0]?.usedBytes ?? Infinity) <= 200 * 1024, JSON.stringify({ usage, final }));
}

const crowd = () => Array.from({ length: 6 }, () => randomImage({ layers: 2, layerSize: 48 * 1024 }));

describe('eviction while clients pull', () => {
  let setup: ProxySetup;
  const images = crowd();
  before(async () => {
    setup = await startProxySetup({ tagTtl: '1h', maxBytes: '200KiB' }, { 'proxyCache.evictionInterval': 0 });
    for (const [index, image] of images.entries()) await pushImage(setup.upstream.url, `crowd/app${index}`, 'v1', image);
  });
  after(() => setup.close());

  test('no pull fails while images are evicted under it, and evicted images come back on the next pull', async () => {
    await pullWhileEvicting(setup.proxy.url, budgetsOf(setup), setup.forwarder, images);
  });
});

describe('eviction while clients pull, with CNCF Distribution as the upstream', { skip: missingCommands('docker-registry') }, () => {
  let distribution: Distribution;
  let forwarder: Forwarder;
  let cache: TestRegistry;
  const images = crowd();
  before(async () => {
    distribution = await startDistribution();
    forwarder = await Forwarder.start(distribution.url);
    cache = await startTestRegistry({
      repositories: [{ prefix: 'up/', kind: 'proxy', upstream: forwarder.url, tagTtl: '1h', maxBytes: '200KiB' }],
      'proxyCache.evictionInterval': 0,
    });
    for (const [index, image] of images.entries())
      await pushToDistribution(distribution.url, `crowd/app${index}`, 'v1', { blobs: [image.config, ...image.layers], manifest: image.manifest });
  });
  after(async () => {
    await cache?.close();
    await forwarder?.close();
    await distribution?.close();
  });

  test('no pull fails while images are evicted under it, and evicted images come back on the next pull', async () => {
    const budgets = cache.server.registry.proxyCaches?.budgets;
    assert.ok(budgets !== undefined);
    await pullWhileEvicting(cache.url, budgets, forwarder, images);
  });
});

describe('one budget shared by every cache; an index evicted whole; eviction waiting for garbage collection', () => {
  let upstream: TestRegistry;
  let forwarder: Forwarder;
  let cache: TestRegistry;
  const images = new Map<string, TestImage>();
  let index: TestManifest;
  before(async () => {
    upstream = await startTestRegistry();
    forwarder = await Forwarder.start(upstream.url);
    cache = await startTestRegistry({
      repositories: [
        { prefix: 'one/', kind: 'proxy', upstream: forwarder.url, tagTtl: '1h' },
        { prefix: 'two/', kind: 'proxy', upstream: forwarder.url, tagTtl: '1h' },
      ],
      'proxyCache.maxBytes': '300KiB',
      'proxyCache.evictionInterval': 0,
    });
    // Three images of about 128 KiB; 300 KiB hold two. a is an index of two platform images.
    for (const name of ['b', 'c']) {
      const image = randomImage({ layers: 2, layerSize: 64 * 1024 });
      images.set(name, image);
      await pushImage(upstream.url, `team/${name}`, '1', image);
    }
    for (const platform of ['amd64', 'arm64']) {
      const image = randomImage({ layers: 1, layerSize: 64 * 1024 });
      images.set(platform, image);
      await pushImage(upstream.url, 'team/a', image.manifest.digest, image);
    }
    index = imageIndex([
      { image: images.get('amd64') as TestImage, os: 'linux', architecture: 'amd64' },
      { image: images.get('arm64') as TestImage, os: 'linux', architecture: 'arm64' },
    ]);
    await pushManifest(upstream.url, 'team/a', '1', index);
  });
  after(async () => {
    await cache?.close();
    await forwarder?.close();
    await upstream?.close();
  });

  test("the caches together stay within proxyCache.maxBytes, evicting the least recently pulled image of any cache, never while the collector's lease is held", async () => {
    const { registry } = cache.server;
    const budgets = registry.proxyCaches?.budgets;
    assert.ok(budgets !== undefined);
    assert.deepEqual(
      budgets.budgets.map((budget) => [budget.name, budget.maxBytes]),
      [['all', 300 * 1024]],
    );
    // A garbage collection pass holds the collector's lease: eviction waits, even when fills ask for it.
    const gc = await registry.operations.store.leases.acquire(collectorLease);
    assert.ok(gc !== undefined);
    assert.equal(await pullManifest(cache.url, 'one/team/a', '1'), index.digest);
    for (const platform of ['amd64', 'arm64']) {
      const image = images.get(platform) as TestImage;
      await pullManifest(cache.url, 'one/team/a', image.manifest.digest);
      await pullBlobs(cache.url, 'one/team/a', image);
    }
    for (const [prefix, name] of [
      ['two/', 'b'],
      ['one/', 'c'],
    ] as const) {
      await pullManifest(cache.url, `${prefix}team/${name}`, '1');
      await pullBlobs(cache.url, `${prefix}team/${name}`, images.get(name) as TestImage);
    }
    assert.deepEqual(await budgets.enforce(), [], 'nothing is evicted while garbage collection runs');
    const over = (await (await fetch(`${cache.url}/berth/usage`)).json()) as { caches: { name: string; usedBytes: number; maxBytes: number }[] };
    assert.equal(over.caches.length, 1);
    assert.equal(over.caches[0]?.name, 'all');
    assert.ok((over.caches[0]?.usedBytes ?? 0) > 300 * 1024, JSON.stringify(over));
    await gc.release();

    const [report] = await budgets.enforce();
    assert.equal(report?.budget, 'all');
    assert.equal(report?.images, 1);
    assert.ok((report?.bytesFreed ?? 0) >= 128 * 1024);
    const { meta, blobs } = registry;
    // one/'s a was pulled least recently: the index goes whole, with its platform images and their layers.
    assert.equal(await meta.manifests.get('one/team/a' as never, { kind: 'tag', tag: '1' as never }), undefined, 'its tag is gone');
    for (const digest of [index.digest, images.get('amd64')?.manifest.digest, images.get('arm64')?.manifest.digest])
      assert.equal(await meta.manifests.get('one/team/a' as never, { kind: 'digest', digest: digest as never }), undefined, `manifest ${digest} is gone`);
    for (const platform of ['amd64', 'arm64']) {
      const layer = images.get(platform)?.layers[0];
      assert.ok(layer !== undefined);
      assert.equal(await blobs.stat(layer.digest), undefined, `the ${platform} layer is gone`);
    }
    for (const [name, tag] of [
      ['two/team/b', '1'],
      ['one/team/c', '1'],
    ])
      assert.notEqual(await meta.manifests.get(name as never, { kind: 'tag', tag: tag as never }), undefined, `${name} stays`);
    const [usage] = await budgets.usage();
    assert.ok(usage !== undefined && usage.usedBytes <= 300 * 1024);
    const metrics = await (await fetch(`${cache.url}/metrics`)).text();
    assert.match(metrics, new RegExp(`berth_proxy_cache_bytes\\{budget="all"\\} ${usage.usedBytes}\n`));
    assert.match(metrics, /berth_proxy_cache_max_bytes\{budget="all"\} 307200\n/);
    assert.match(metrics, /berth_proxy_evicted_images_total\{budget="all"\} 1\n/);
    assert.match(metrics, new RegExp(`berth_proxy_evicted_bytes_total\\{budget="all"\\} ${report?.bytesFreed}\n`));
  });
});

describe("a size budget on PostgreSQL, beside a hosted prefix inside the cache's", { skip: postgresMissing() }, () => {
  let postgres: TestPostgres;
  let upstream: TestRegistry;
  let forwarder: Forwarder;
  let cache: TestRegistry;
  before(async () => {
    postgres = await startTestPostgres();
    upstream = await startTestRegistry();
    forwarder = await Forwarder.start(upstream.url);
    cache = await startTestRegistry({
      repositories: [
        { prefix: 'up/', kind: 'proxy', upstream: forwarder.url, maxBytes: '300KiB' },
        { prefix: 'up/local/', kind: 'hosted' },
      ],
      'proxyCache.evictionInterval': 0,
      ...postgresMetadataSettings(await postgres.createDatabase()),
    });
  });
  after(async () => {
    await cache?.close();
    await forwarder?.close();
    await upstream?.close();
    await postgres?.close();
  });

  test('the budget counts and evicts only what the cache serves; the hosted repository under its prefix is neither counted nor touched', async () => {
    const hosted = randomImage({ layers: 2, layerSize: 100 * 1024 });
    await pushImage(cache.url, 'up/local/app', 'v1', hosted);
    const images: TestImage[] = [];
    for (const name of ['a', 'b', 'c']) {
      const image = randomImage({ layers: 2, layerSize: 64 * 1024 });
      images.push(image);
      await pushImage(upstream.url, `team/${name}`, '1', image);
      await pullManifest(cache.url, `up/team/${name}`, '1');
      await pullBlobs(cache.url, `up/team/${name}`, image);
    }
    const budgets = cache.server.registry.proxyCaches?.budgets;
    assert.ok(budgets !== undefined);
    const reports = await budgets.enforce();
    const [usage] = await budgets.usage();
    assert.ok(usage !== undefined && usage.usedBytes <= 300 * 1024 && usage.usedBytes > 200 * 1024, JSON.stringify({ usage, reports }));
    // Fills also start a check of their own: count every eviction, not only this call's.
    const metrics = await (await fetch(`${cache.url}/metrics`)).text();
    assert.match(metrics, /berth_proxy_evicted_images_total\{budget="up\/"\} 1\n/, 'one image (the oldest) made room');
    assert.equal(await cache.server.registry.meta.manifests.get('up/team/a' as never, { kind: 'tag', tag: '1' as never }), undefined);
    await pullBlobs(cache.url, 'up/local/app', hosted);
    assert.deepEqual(((await (await fetch(`${cache.url}/v2/up/local/app/tags/list`)).json()) as { tags: string[] }).tags, ['v1']);
    await pullManifest(cache.url, 'up/team/a', '1');
    await pullBlobs(cache.url, 'up/team/a', images[0] as TestImage);
  });
});
