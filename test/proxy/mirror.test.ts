import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';
import { realImage } from '../copy/fixtures.ts';
import { Forwarder } from './forwarder.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

describe('a Docker Hub style mirror: every unprefixed name is cached, official images under library/', () => {
  let upstream: TestRegistry;
  let forwarder: Forwarder;
  let mirror: RunningServer;
  let data: { path: string; remove(): Promise<void> };
  const log = new PassThrough();
  const lines: Record<string, unknown>[] = [];

  before(async () => {
    upstream = await startTestRegistry();
    forwarder = await Forwarder.start(upstream.url);
    data = await tempDir('berth-mirror');
    log.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    const config = await loadConfig({
      env: {},
      overrides: {
        listen: '127.0.0.1:0',
        dataDir: data.path,
        repositories: [
          // The daemon.json registry-mirrors setup: names arrive without a registry prefix.
          { prefix: '', kind: 'proxy', upstream: forwarder.url, officialImages: true, tagTtl: 0, failureBackoff: 0, namespaces: ['docker.io'] },
          { prefix: 'team/', kind: 'hosted' },
          { prefix: 'cache/', kind: 'proxy', upstream: forwarder.url, pushes: true },
        ],
      },
    });
    mirror = await startServer(config, pino({ level: 'warn' }, log));
  });
  after(async () => {
    await mirror?.close();
    await forwarder?.close().catch(() => undefined);
    await upstream?.close();
    await data?.remove();
  });

  const url = () => `http://${mirror.address}`;

  test('alpine is library/alpine upstream; ?ns=docker.io changes nothing for a "" prefix', async () => {
    const image = randomImage();
    await pushImage(upstream.url, 'library/alpine', '3', image);
    for (const name of ['alpine', 'library/alpine']) {
      const response = await fetch(`${url()}/v2/${name}/manifests/3?ns=docker.io`, { headers: { accept } });
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get('docker-content-digest'), image.manifest.digest);
      await response.arrayBuffer();
    }
    assert.ok(forwarder.count('GET', '/v2/library/alpine/manifests/3') >= 1);
    assert.equal(forwarder.count('GET', '/v2/alpine/'), 0);
  });

  test('a hosted prefix next to a "" mirror still takes pushes; a cache with pushes: true does too', async () => {
    await pushImage(url(), 'team/app', '1', randomImage());
    const local = randomImage();
    await pushImage(url(), 'cache/local', '1', local);
    // The upstream has no cache/local:1, and the tag stays: it was pushed here.
    const pulled = await fetch(`${url()}/v2/cache/local/manifests/1`, { headers: { accept } });
    assert.equal(pulled.status, 200);
    assert.equal(pulled.headers.get('docker-content-digest'), local.manifest.digest);
    await pulled.arrayBuffer();
    assert.equal(forwarder.count('GET', '/v2/team/'), 0, 'hosted names never reach the upstream');
  });

  test('serving a stale tag is logged with the upstream and the tag', async () => {
    const image = randomImage();
    await pushImage(upstream.url, 'library/busybox', '1', image);
    await (await fetch(`${url()}/v2/busybox/manifests/1`, { headers: { accept } })).arrayBuffer();
    await forwarder.close();
    const stale = await fetch(`${url()}/v2/busybox/manifests/1`, { headers: { accept } });
    assert.equal(stale.headers.get('docker-content-digest'), image.manifest.digest);
    await stale.arrayBuffer();
    const warning = lines.find((line) => line['msg'] === 'upstream unavailable; serving from the cache');
    assert.ok(warning !== undefined, JSON.stringify(lines));
    assert.equal(warning['repository'], 'busybox');
    assert.equal(warning['tag'], '1');
    assert.equal(warning['served'], image.manifest.digest);
    assert.equal(warning['level'], 40);
  });
});

describe('skopeo pulls through the cache', { skip: missingCommands('skopeo') }, () => {
  let upstream: TestRegistry;
  let cache: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    upstream = await startTestRegistry();
    cache = await startTestRegistry({ repositories: [{ prefix: 'hub/', kind: 'proxy', upstream: upstream.url }] });
    temp = await tempDir('berth-skopeo-proxy');
  });
  after(async () => {
    await cache?.close();
    await upstream?.close();
    await temp?.remove();
  });

  test('a real client copies an image out of the cold cache, digests intact', async () => {
    const image = await realImage({ layers: 3, layerSize: 200 * 1024 });
    await pushImage(upstream.url, 'team/tool', 'v9', image);
    await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${cache.host}/hub/team/tool:v9`, `oci:${temp.path}/tool:v9`]);
    const raw = await run('skopeo', ['inspect', '--raw', `oci:${temp.path}/tool:v9`]);
    assert.equal(raw, image.manifest.bytes.toString());
    const again = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${cache.host}/hub/team/tool:v9`]);
    assert.equal((JSON.parse(again) as { Digest: string }).Digest, image.manifest.digest);
  });
});
