import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { blobOf, pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { startProxySetup } from '../proxy/setup.ts';
import { writeOciArchive } from '../sources/archive/fixtures.ts';

/** Samples of the exposition, by name with labels as printed (`name{a="b"}`). */
async function scrape(registry: TestRegistry): Promise<Map<string, number>> {
  const reply = await call(registry.url, 'GET', '/metrics');
  assert.equal(reply.status, 200);
  assert.match(reply.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of reply.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('Prometheus metrics', () => {
  it('counts requests by endpoint kind, method and status, with latencies, bytes and upload outcomes', async () => {
    const directory = await tempDir('berth-metrics');
    await mkdir(join(directory.path, 'archives'));
    await writeOciArchive(join(directory.path, 'archives', 'tool.tar'), [{ image: randomImage(), tags: ['v1'] }]);
    const registry = await startTestRegistry({
      'gc.interval': 0,
      'gc.gracePeriod': 0,
      repositories: [{ prefix: 'local/', kind: 'archive', directory: join(directory.path, 'archives'), watch: false, rescanInterval: 0 }],
    });
    try {
      const image = randomImage({ layerSize: 5000 });
      const accept = { accept: image.manifest.mediaType };
      assert.equal((await call(registry.url, 'GET', '/v2/')).status, 200);
      await pushImage(registry.url, 'team/app', 'v1', image);
      assert.equal((await call(registry.url, 'GET', '/v2/team/app/manifests/v1', { headers: accept })).status, 200);
      assert.equal((await call(registry.url, 'GET', '/v2/team/app/manifests/missing', { headers: accept })).status, 404);
      assert.equal((await call(registry.url, 'GET', `/v2/team/app/blobs/${image.layers[0]?.digest}`)).status, 200);
      const chunk = blobOf(randomBytes(3000));
      const started = await call(registry.url, 'POST', '/v2/team/app/blobs/uploads/');
      const location = started.headers.get('location') as string;
      assert.equal((await call(registry.url, 'PATCH', location, { body: chunk.bytes, headers: { 'content-type': 'application/octet-stream' } })).status, 202);
      assert.equal((await call(registry.url, 'PUT', `${location}?digest=${chunk.digest}`)).status, 201);
      const cancelled = (await call(registry.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.get('location') as string;
      assert.equal((await call(registry.url, 'DELETE', cancelled)).status, 204);
      for (let pull = 0; pull < 2; pull++) assert.equal((await call(registry.url, 'GET', '/v2/local/tool/tags/list')).status, 200);
      await sleep(5);
      const report = await registry.server.registry.operations.collect();

      const samples = await scrape(registry);
      const expected: Record<string, number> = {
        'berth_http_requests_total{endpoint="base",method="GET",status="200"}': 1,
        'berth_http_requests_total{endpoint="blob_upload_start",method="POST",status="201"}': 3,
        'berth_http_requests_total{endpoint="blob_upload_start",method="POST",status="202"}': 2,
        'berth_http_requests_total{endpoint="manifest",method="PUT",status="201"}': 1,
        'berth_http_requests_total{endpoint="manifest",method="GET",status="200"}': 1,
        'berth_http_requests_total{endpoint="manifest",method="GET",status="404"}': 1,
        'berth_http_requests_total{endpoint="blob",method="GET",status="200"}': 1,
        'berth_http_requests_total{endpoint="blob_upload",method="PATCH",status="202"}': 1,
        'berth_http_requests_total{endpoint="blob_upload",method="PUT",status="201"}': 1,
        'berth_http_requests_total{endpoint="blob_upload",method="DELETE",status="204"}': 1,
        'berth_http_requests_total{endpoint="tags",method="GET",status="200"}': 2,
        'berth_http_request_duration_seconds_count{endpoint="manifest",method="GET"}': 2,
        'berth_upload_sessions_total{outcome="started"}': 5,
        'berth_upload_sessions_total{outcome="completed"}': 4,
        'berth_upload_sessions_total{outcome="cancelled"}': 1,
        berth_upload_sessions_open: 0,
        'berth_gc_runs_total{result="ok"}': 1,
        berth_gc_freed_bytes_total: 3000,
        'berth_gc_deleted_total{kind="blob"}': 1,
        'berth_gc_deleted_total{kind="link"}': 1,
        'berth_cache_requests_total{kind="archive",cache="index",result="miss"}': 1,
      };
      for (const [name, value] of Object.entries(expected)) assert.equal(samples.get(name), value, name);
      assert.equal(report?.bytesFreed, 3000, 'the chunked upload was never referenced');
      assert.ok((samples.get('berth_cache_requests_total{kind="archive",cache="index",result="hit"}') ?? 0) >= 2, 'each pull finds the index in memory');
      assert.ok((samples.get('berth_http_received_bytes_total{endpoint="blob_upload"}') ?? 0) >= 3000);
      assert.ok((samples.get('berth_http_received_bytes_total{endpoint="blob_upload_start"}') ?? 0) >= 10_000 + image.config.bytes.length);
      assert.ok((samples.get('berth_http_sent_bytes_total{endpoint="blob"}') ?? 0) >= 5000);
      assert.ok((samples.get('berth_gc_last_success_timestamp_seconds') ?? 0) > Date.now() / 1000 - 60);
      assert.ok(samples.has('process_cpu_seconds_total'), 'process metrics are included');
      const names = [...samples.keys()].join('\n');
      assert.doesNotMatch(names, /team|local\/tool|sha256/, 'no repository names or digests in labels');
    } finally {
      await registry.close();
      await directory.remove();
    }
  });

  it('counts hits and misses of the pull-through cache', async () => {
    const setup = await startProxySetup({ tagTtl: '1h' });
    try {
      const image = randomImage({ layers: 1 });
      await pushImage(setup.upstream.url, 'lib/app', 'v1', image);
      const accept = { accept: image.manifest.mediaType };
      for (let pull = 0; pull < 3; pull++) {
        assert.equal((await call(setup.proxy.url, 'GET', '/v2/up/lib/app/manifests/v1', { headers: accept })).status, 200);
        assert.equal((await call(setup.proxy.url, 'GET', `/v2/up/lib/app/blobs/${image.layers[0]?.digest}`)).status, 200);
      }
      const samples = await scrape(setup.proxy);
      assert.equal(samples.get('berth_cache_requests_total{kind="proxy",cache="manifest",result="miss"}'), 1);
      assert.equal(samples.get('berth_cache_requests_total{kind="proxy",cache="manifest",result="hit"}'), 2);
      assert.equal(samples.get('berth_cache_requests_total{kind="proxy",cache="blob",result="miss"}'), 1);
      assert.equal(samples.get('berth_cache_requests_total{kind="proxy",cache="blob",result="hit"}'), 2);
    } finally {
      await setup.close();
    }
  });

  it('answers HEAD like GET, without the body', async () => {
    const registry = await startTestRegistry({ 'gc.interval': 0 });
    try {
      const head = await call(registry.url, 'HEAD', '/metrics');
      assert.equal(head.status, 200);
      assert.match(head.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.equal(head.text, '');
    } finally {
      await registry.close();
    }
  });

  it('can be turned off', async () => {
    const registry = await startTestRegistry({ 'gc.interval': 0, 'metrics.enabled': false });
    try {
      assert.equal((await call(registry.url, 'GET', '/metrics')).status, 404);
    } finally {
      await registry.close();
    }
  });
});
