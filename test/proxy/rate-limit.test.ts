import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushToDistribution, startDistribution, type Distribution } from '../helpers/distribution.ts';
import { randomImage, type TestImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { missingCommands } from '../helpers/tools.ts';
import { RateLimiter } from './rate-limiter.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name}{${labels}}`));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('a rate-limited upstream: CNCF Distribution behind a proxy answering 429 with rate-limit headers', { skip: missingCommands('docker-registry') }, () => {
  let distribution: Distribution;
  let limiter: RateLimiter;
  let cache: TestRegistry;
  const images = new Map<string, TestImage>();

  before(async () => {
    distribution = await startDistribution();
    // Six manifest GETs; the last two (a third, rounded down) are kept for content the cache lacks.
    limiter = await RateLimiter.start(distribution.url, 6);
    cache = await startTestRegistry({ repositories: [{ prefix: 'hub/', kind: 'proxy', upstream: limiter.url, tagTtl: 0, rateLimitReserve: 0.34 }] });
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']) {
      const image = randomImage({ layers: 1, layerSize: 32 * 1024 });
      images.set(name, image);
      await pushToDistribution(distribution.url, `team/${name}`, '1', { blobs: [image.config, ...image.layers], manifest: image.manifest });
    }
  });
  after(async () => {
    await cache?.close();
    await limiter?.close();
    await distribution?.close();
  });

  const pull = async (name: string) => {
    const response = await fetch(`${cache.url}/v2/hub/team/${name}/manifests/1`, { headers: { accept } });
    const body = Buffer.from(await response.arrayBuffer());
    return { status: response.status, digest: response.headers.get('docker-content-digest'), retryAfter: response.headers.get('retry-after'), body };
  };

  test('near the limit cached tags are served without re-checking; on 429 the cache serves what it has and refuses the rest until Retry-After', async () => {
    const a = images.get('a') as TestImage;
    assert.equal((await pull('a')).digest, a.manifest.digest);
    for (const blob of [a.config, ...a.layers]) await (await fetch(`${cache.url}/v2/hub/team/a/blobs/${blob.digest}`)).arrayBuffer();
    assert.equal((await pull('a')).digest, a.manifest.digest);
    assert.equal(limiter.count('HEAD', '/v2/team/a/manifests/1'), 1, 'with plenty left, a cached tag is re-checked (HEAD, which does not count)');

    for (const name of ['b', 'c', 'd']) assert.equal((await pull(name)).status, 200);
    assert.equal(limiter.used, 4, 'two GETs left: the reserve');
    assert.equal((await pull('a')).digest, a.manifest.digest);
    assert.equal(limiter.count('HEAD', '/v2/team/a/manifests/1'), 1, 'near the limit the cached tag is served without asking');

    assert.equal((await pull('e')).status, 200, 'content the cache lacks still comes from upstream');
    assert.equal((await pull('f')).status, 200);
    const refused = await pull('g');
    assert.equal(refused.status, 429);
    assert.equal(refused.retryAfter, '30');
    assert.equal((JSON.parse(refused.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, 'TOOMANYREQUESTS');
    assert.equal(limiter.count('GET', '/v2/team/g/manifests/1'), 1, 'the 429 is not retried');

    const before = limiter.requests.length;
    const blocked = await pull('h');
    assert.equal(blocked.status, 429);
    assert.ok(Number(blocked.retryAfter) > 0 && Number(blocked.retryAfter) <= 30);
    const stale = await pull('a');
    assert.equal(stale.status, 200);
    assert.deepEqual(stale.body, a.manifest.bytes);
    for (const blob of [a.config, ...a.layers]) {
      const response = await fetch(`${cache.url}/v2/hub/team/a/blobs/${blob.digest}`);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
    }
    assert.equal(limiter.requests.length, before, 'within Retry-After the upstream is not asked at all');

    const metrics = await (await fetch(`${cache.url}/metrics`)).text();
    assert.equal(metric(metrics, 'berth_proxy_upstream_rate_limited_total', 'cache="hub/"'), 1);
    assert.ok(metric(metrics, 'berth_proxy_upstream_requests_total', 'cache="hub/"') >= 9);
    assert.equal(metric(metrics, 'berth_proxy_upstream_ratelimit_remaining', 'cache="hub/"'), 0);
    assert.equal(metric(metrics, 'berth_proxy_stale_served_total', 'cache="hub/",reason="near_limit"'), 1);
    assert.equal(metric(metrics, 'berth_proxy_stale_served_total', 'cache="hub/",reason="rate_limited"'), 1);
    const served = metric(metrics, 'berth_proxy_cache_served_bytes_total', 'cache="hub/"');
    assert.equal(served, a.config.bytes.length + (a.layers[0]?.bytes.length ?? 0), "the second read of a's blobs came from the cache");
    assert.ok(metric(metrics, 'berth_cache_requests_total', 'kind="proxy",cache="manifest",result="hit"') >= 3);
    assert.ok(metric(metrics, 'berth_cache_requests_total', 'kind="proxy",cache="manifest",result="miss"') >= 6);
  });
});
