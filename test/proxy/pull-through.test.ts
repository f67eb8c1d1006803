import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { blobOf, manifestOf, pushBlob, pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

async function getManifest(url: string, name: string, reference: string): Promise<Response> {
  return fetch(`${url}/v2/${name}/manifests/${reference}`, { headers: { accept } });
}

describe('pull-through cache: cold and warm pulls', () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup({ tagTtl: '1h' });
  });
  after(() => setup.close());

  test('a cold pull fetches from upstream once; a warm pull does not ask it again', async () => {
    const image = randomImage({ layers: 2, layerSize: 64 * 1024 });
    await pushImage(setup.upstream.url, 'team/app', '1.0', image);

    const cold = await getManifest(setup.proxy.url, 'up/team/app', '1.0');
    assert.equal(cold.status, 200);
    assert.equal(cold.headers.get('docker-content-digest'), image.manifest.digest);
    assert.equal(cold.headers.get('content-type'), mediaTypes.ociManifest);
    assert.deepEqual(Buffer.from(await cold.arrayBuffer()), image.manifest.bytes);
    for (const blob of [image.config, ...image.layers]) {
      const response = await fetch(`${setup.proxy.url}/v2/up/team/app/blobs/${blob.digest}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('content-length'), String(blob.bytes.length));
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
    }

    const warm = await getManifest(setup.proxy.url, 'up/team/app', '1.0');
    assert.equal(warm.headers.get('docker-content-digest'), image.manifest.digest);
    await warm.arrayBuffer();
    for (const blob of [image.config, ...image.layers]) {
      const response = await fetch(`${setup.proxy.url}/v2/up/team/app/blobs/${blob.digest}`, { method: 'HEAD' });
      assert.equal(response.status, 200);
      assert.equal(setup.forwarder.count('GET', `/blobs/${blob.digest}`), 1, 'each blob fetched from upstream once');
    }
    assert.equal(setup.forwarder.count('GET', '/v2/team/app/manifests/1.0'), 1);
    assert.equal(setup.forwarder.count('HEAD', '/v2/team/app/manifests/1.0'), 0, 'within the TTL the tag is not re-checked');
  });

  test('cached content is ordinary hosted content: listed in the catalog and tag list', async () => {
    const image = randomImage();
    await pushImage(setup.upstream.url, 'listed/app', 'v1', image);
    await (await getManifest(setup.proxy.url, 'up/listed/app', 'v1')).arrayBuffer();
    const catalog = (await (await fetch(`${setup.proxy.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(catalog.repositories.includes('up/listed/app'), `catalog lists the cached repository: ${catalog.repositories.join(', ')}`);
    const tags = (await (await fetch(`${setup.proxy.url}/v2/up/listed/app/tags/list`)).json()) as { name: string; tags: string[] };
    assert.deepEqual(tags, { name: 'up/listed/app', tags: ['v1'] });
  });

  test('an index is cached with its children on demand; a digest pull is never re-checked', async () => {
    const amd = randomImage();
    const arm = randomImage();
    await pushImage(setup.upstream.url, 'multi/app', amd.manifest.digest, amd);
    await pushImage(setup.upstream.url, 'multi/app', arm.manifest.digest, arm);
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: [
          { mediaType: mediaTypes.ociManifest, digest: amd.manifest.digest, size: amd.manifest.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: mediaTypes.ociManifest, digest: arm.manifest.digest, size: arm.manifest.bytes.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      },
      mediaTypes.ociIndex,
    );
    await pushManifest(setup.upstream.url, 'multi/app', 'latest', index);
    const top = await getManifest(setup.proxy.url, 'up/multi/app', 'latest');
    assert.equal(top.headers.get('docker-content-digest'), index.digest);
    await top.arrayBuffer();
    const child = await getManifest(setup.proxy.url, 'up/multi/app', arm.manifest.digest);
    assert.equal(child.status, 200);
    assert.deepEqual(Buffer.from(await child.arrayBuffer()), arm.manifest.bytes);
    // A client that takes no index gets the linux/amd64 image, fetched for it.
    const old = await fetch(`${setup.proxy.url}/v2/up/multi/app/manifests/latest`, { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(old.headers.get('docker-content-digest'), amd.manifest.digest);
    await old.arrayBuffer();
    const again = await getManifest(setup.proxy.url, 'up/multi/app', arm.manifest.digest);
    await again.arrayBuffer();
    assert.equal(setup.forwarder.count('GET', `/manifests/${arm.manifest.digest}`), 1);
    assert.equal(setup.forwarder.count('HEAD', `/manifests/${arm.manifest.digest}`), 0);
  });

  test("unknown names and tags are the upstream's answer: 404 with the OCI code", async () => {
    const missing = await getManifest(setup.proxy.url, 'up/team/none', 'latest');
    assert.equal(missing.status, 404);
    const body = (await missing.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'MANIFEST_UNKNOWN');
    assert.match(body.errors[0]?.message ?? '', /does not exist at upstream/);
    const blob = await fetch(`${setup.proxy.url}/v2/up/team/app/blobs/sha256:${'0'.repeat(64)}`);
    assert.equal(blob.status, 404);
    assert.equal(((await blob.json()) as { errors: { code: string }[] }).errors[0]?.code, 'BLOB_UNKNOWN');
  });

  test('pushing to a cache prefix is refused with a clear error', async () => {
    const response = await fetch(`${setup.proxy.url}/v2/up/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(response.status, 405);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'UNSUPPORTED');
    assert.match(body.errors[0]?.message ?? '', /pull-through cache of http:\/\/127\.0\.0\.1:\d+: pushes and deletes are refused/);
    const manifest = await fetch(`${setup.proxy.url}/v2/up/team/app/manifests/x`, { method: 'PUT', headers: { 'content-type': mediaTypes.ociManifest }, body: '{}' });
    assert.equal(manifest.status, 405);
    await manifest.arrayBuffer();
  });

  test('?ns= names the upstream registry, as containerd mirrors send it', async () => {
    const image = randomImage();
    await pushImage(setup.upstream.url, 'nsd/app', '2', image);
    const namespace = new URL(setup.forwarder.url).host;
    const response = await getManifest(setup.proxy.url, 'nsd/app', `2?ns=${namespace}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-content-digest'), image.manifest.digest);
    await response.arrayBuffer();
    const blob = await fetch(`${setup.proxy.url}/v2/nsd/app/blobs/${image.config.digest}?ns=${namespace}`);
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), image.config.bytes);
    // Another namespace is not ours: the name is served as it is (hosted, where it does not exist).
    const other = await getManifest(setup.proxy.url, 'nsd/app', '2?ns=quay.io');
    assert.equal(other.status, 404);
    await other.arrayBuffer();
  });
});

describe('pull-through cache: blobs stream while they are stored', () => {
  let setup: ProxySetup;
  before(async () => {
    setup = await startProxySetup();
  });
  after(() => setup.close());

  test('a client gets the first bytes of a cold blob before the upstream has sent the rest', async () => {
    const blob = blobOf(randomBytes(2 * 1024 * 1024));
    await pushBlob(setup.upstream.url, 'stream/app', blob);
    const release = Promise.withResolvers<void>();
    setup.forwarder.hook = (method, path) => (method === 'GET' && path.includes(blob.digest) ? { holdAfter: 256 * 1024, release: release.promise } : undefined);
    const response = await fetch(`${setup.proxy.url}/v2/up/stream/app/blobs/${blob.digest}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-length'), String(blob.bytes.length));
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    // The upstream is still holding back everything after 256 KiB, yet bytes arrived.
    assert.ok((first.value?.length ?? 0) > 0 && (first.value?.length ?? 0) <= 256 * 1024);
    release.resolve();
    const chunks = [Buffer.from(first.value as Uint8Array)];
    for (let next = await reader.read(); !next.done; next = await reader.read()) chunks.push(Buffer.from(next.value));
    assert.deepEqual(Buffer.concat(chunks), blob.bytes);
    setup.forwarder.hook = undefined;
  });

  test('concurrent cold pulls of one blob and one manifest reach the upstream once', async () => {
    const image = randomImage({ layers: 1, layerSize: 3 * 1024 * 1024 });
    await pushImage(setup.upstream.url, 'crowd/app', 'v1', image);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    const release = Promise.withResolvers<void>();
    setup.forwarder.hook = (method, path) => (method === 'GET' && path.includes(layer.digest) ? { holdAfter: 64 * 1024, release: release.promise } : undefined);
    const manifests = await Promise.all(Array.from({ length: 6 }, () => getManifest(setup.proxy.url, 'up/crowd/app', 'v1')));
    for (const response of manifests) assert.equal(response.headers.get('docker-content-digest'), image.manifest.digest);
    await Promise.all(manifests.map((response) => response.arrayBuffer()));
    const pulls = Array.from({ length: 8 }, () =>
      fetch(`${setup.proxy.url}/v2/up/crowd/app/blobs/${layer.digest}`).then(async (response) => Buffer.from(await response.arrayBuffer())),
    );
    setTimeout(() => release.resolve(), 50);
    for (const body of await Promise.all(pulls)) assert.deepEqual(body, layer.bytes);
    assert.equal(setup.forwarder.count('GET', `/blobs/${layer.digest}`), 1);
    assert.equal(setup.forwarder.count('GET', '/v2/crowd/app/manifests/v1'), 1);
    setup.forwarder.hook = undefined;
  });

  test('a client that goes away does not stop or spoil the fill', async () => {
    const blob = blobOf(randomBytes(1024 * 1024));
    await pushBlob(setup.upstream.url, 'leave/app', blob);
    const release = Promise.withResolvers<void>();
    setup.forwarder.hook = (method, path) => (method === 'GET' && path.includes(blob.digest) ? { holdAfter: 128 * 1024, release: release.promise } : undefined);
    const controller = new AbortController();
    const response = await fetch(`${setup.proxy.url}/v2/up/leave/app/blobs/${blob.digest}`, { signal: controller.signal });
    await (response.body as ReadableStream<Uint8Array>).getReader().read();
    controller.abort();
    release.resolve();
    const again = await fetch(`${setup.proxy.url}/v2/up/leave/app/blobs/${blob.digest}`);
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), blob.bytes);
    assert.equal(setup.forwarder.count('GET', `/blobs/${blob.digest}`), 1);
    setup.forwarder.hook = undefined;
  });

  test('an upstream body that breaks off is resumed from where it stopped', async () => {
    const blob = blobOf(randomBytes(1024 * 1024));
    await pushBlob(setup.upstream.url, 'resume/app', blob);
    let first = true;
    setup.forwarder.hook = (method, path) => {
      if (method !== 'GET' || !path.includes(blob.digest) || !first) return undefined;
      first = false;
      return { cutAfter: 300 * 1024 };
    };
    const response = await fetch(`${setup.proxy.url}/v2/up/resume/app/blobs/${blob.digest}`);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
    assert.equal(setup.forwarder.count('GET', `/blobs/${blob.digest}`), 2, 'one cut-off request, one ranged resumption');
    setup.forwarder.hook = undefined;
  });

  test('content that does not match its digest is never completed to a client nor cached', async () => {
    const blob = blobOf(randomBytes(512 * 1024));
    await pushBlob(setup.upstream.url, 'corrupt/app', blob);
    let corrupt = true;
    setup.forwarder.hook = (method, path) => (method === 'GET' && path.includes(blob.digest) && corrupt ? { corruptAt: 1000 } : undefined);
    const response = await fetch(`${setup.proxy.url}/v2/up/corrupt/app/blobs/${blob.digest}`);
    assert.equal(response.status, 200);
    await assert.rejects(response.arrayBuffer(), 'the body is cut short: the last byte waits for the digest check');
    corrupt = false;
    const retry = await fetch(`${setup.proxy.url}/v2/up/corrupt/app/blobs/${blob.digest}`);
    assert.deepEqual(Buffer.from(await retry.arrayBuffer()), blob.bytes);
    assert.equal(setup.forwarder.count('GET', `/blobs/${blob.digest}`), 2, 'the corrupt copy was not kept');
    setup.forwarder.hook = undefined;
  });
});
