import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

async function pull(url: string, name: string, tag: string): Promise<{ status: number; digest: string | null; body: Buffer }> {
  const response = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { accept } });
  return { status: response.status, digest: response.headers.get('docker-content-digest'), body: Buffer.from(await response.arrayBuffer()) };
}

describe('pull-through cache: tags', () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup({ tagTtl: 0 });
  });
  after(() => setup.close());

  test('after the TTL a tag is re-checked with a HEAD, and follows the upstream when it moves', async () => {
    const first = randomImage();
    await pushImage(setup.upstream.url, 'moving/app', 'stable', first);
    assert.equal((await pull(setup.proxy.url, 'up/moving/app', 'stable')).digest, first.manifest.digest);
    assert.equal((await pull(setup.proxy.url, 'up/moving/app', 'stable')).digest, first.manifest.digest);
    assert.equal(setup.forwarder.count('HEAD', '/v2/moving/app/manifests/stable'), 1);
    assert.equal(setup.forwarder.count('GET', '/v2/moving/app/manifests/stable'), 1, 'an unchanged tag is not downloaded again');
    const second = randomImage();
    await pushImage(setup.upstream.url, 'moving/app', 'stable', second);
    assert.equal((await pull(setup.proxy.url, 'up/moving/app', 'stable')).digest, second.manifest.digest);
    assert.equal(setup.forwarder.count('GET', '/v2/moving/app/manifests/stable'), 2);
    // The old image stays pullable by digest.
    assert.equal((await pull(setup.proxy.url, 'up/moving/app', first.manifest.digest)).status, 200);
  });

  test('a tag deleted upstream is gone from the cache too', async () => {
    const image = randomImage();
    await pushImage(setup.upstream.url, 'gone/app', 'old', image);
    assert.equal((await pull(setup.proxy.url, 'up/gone/app', 'old')).status, 200);
    const deleted = await fetch(`${setup.upstream.url}/v2/gone/app/manifests/old`, { method: 'DELETE' });
    assert.equal(deleted.status, 202);
    const after = await pull(setup.proxy.url, 'up/gone/app', 'old');
    assert.equal(after.status, 404);
    assert.equal((JSON.parse(after.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
    const tags = (await (await fetch(`${setup.proxy.url}/v2/up/gone/app/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, []);
  });
});

describe('pull-through cache: upstream outage', () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup({ tagTtl: 0, failureBackoff: '1h' });
  });
  after(() => setup.close());

  test('cached tags and blobs keep pulling while the upstream is down; uncached names fail clearly', async () => {
    const image = randomImage({ layers: 2 });
    await pushImage(setup.upstream.url, 'steady/app', '1.0', image);
    const warm = await pull(setup.proxy.url, 'up/steady/app', '1.0');
    assert.equal(warm.digest, image.manifest.digest);
    for (const blob of [image.config, ...image.layers]) await (await fetch(`${setup.proxy.url}/v2/up/steady/app/blobs/${blob.digest}`)).arrayBuffer();

    await setup.forwarder.close();

    const stale = await pull(setup.proxy.url, 'up/steady/app', '1.0');
    assert.equal(stale.status, 200);
    assert.equal(stale.digest, image.manifest.digest);
    assert.deepEqual(stale.body, image.manifest.bytes);
    for (const blob of [image.config, ...image.layers]) {
      const response = await fetch(`${setup.proxy.url}/v2/up/steady/app/blobs/${blob.digest}`);
      assert.equal(response.status, 200);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
    }
    const byDigest = await pull(setup.proxy.url, 'up/steady/app', image.manifest.digest);
    assert.equal(byDigest.status, 200);
    const tags = (await (await fetch(`${setup.proxy.url}/v2/up/steady/app/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['1.0'], 'the tag list falls back to the cache');

    const uncached = await pull(setup.proxy.url, 'up/never/pulled', 'latest');
    assert.equal(uncached.status, 502);
    const error = (JSON.parse(uncached.body.toString()) as { errors: { code: string; message: string }[] }).errors[0];
    assert.equal(error?.code, 'UNKNOWN');
    assert.match(error?.message ?? '', /^upstream http:\/\/127\.0\.0\.1:\d+ is unreachable and manifest never\/pulled:latest is not cached$/);
    const metrics = await (await fetch(`${setup.proxy.url}/metrics`)).text();
    assert.match(metrics, /^berth_proxy_stale_served_total\{cache="up\/",reason="outage"\} 1$/m, 'the stale tag served during the outage is counted');
  });
});
