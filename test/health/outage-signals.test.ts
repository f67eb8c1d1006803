import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { s3StorageSettings, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * What an operator and a client see while the blob store hangs: a registry
 * on SQLite and an S3 server behind a TCP proxy that black-holes it. Each
 * refused request is one warn line without a stack, readiness and the
 * per-dependency metrics follow the outage, reads of the reachable side keep
 * working, and an upload cut by the outage is resumed after it.
 */
describe('signals of a blob store outage', () => {
  let s3: TestS3;
  let proxy: TcpProxy;
  let registry: TestRegistry;
  let pushed: TestImage;
  before(async () => {
    s3 = await startTestS3();
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    registry = await startTestRegistry(
      {
        ...s3StorageSettings(s3, 'signals', { endpoint: `http://127.0.0.1:${proxy.port}`, requestTimeout: '500ms' }),
        'health.interval': '200ms',
        'health.timeout': '300ms',
      },
      { captureLogs: true },
    );
    pushed = randomImage({ layers: 1, layerSize: 2000 });
    await pushImage(registry.url, 'team/kept', 'v1', pushed);
  });
  after(async () => {
    await registry?.close();
    await proxy?.close();
    await s3?.close();
  });

  const metric = async (name: string, dependency: string): Promise<number | undefined> => {
    const text = (await call(registry.url, 'GET', '/metrics')).text;
    const line = text.split('\n').find((each) => each.startsWith(`${name}{dependency="${dependency}"} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  const linesSaying = (message: string) => registry.logs.filter((line) => line['msg'] === message);
  const readyStatus = async () => (await fetch(`${registry.url}/readyz`)).status;

  it('is one warn line per refused request, a readiness flip told once, and metrics per dependency; then all works again', async () => {
    const first = randomBytes(3000);
    const second = randomBytes(2000);
    const whole = Buffer.concat([first, second]);
    const started = await call(registry.url, 'POST', '/v2/team/chunked/blobs/uploads/');
    assert.equal(started.status, 202);
    const location = started.headers.get('location') as string;
    const patch = (chunk: Buffer, offset: number) =>
      call(registry.url, 'PATCH', location, {
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
    assert.equal((await patch(first, 0)).status, 202);
    assert.equal(await metric('berth_dependency_up', 'blobs'), 1);
    assert.equal((await metric('berth_dependency_outages_total', 'blobs')) ?? 0, 0);

    proxy.setMode('blackhole');
    const outageStarted = Date.now();
    await eventually(async () => (await readyStatus()) === 503, { what: '/readyz answering 503', timeout: 3000 });
    const flippedDown = Date.now() - outageStarted;

    const refused = [await call(registry.url, 'POST', '/v2/team/new/blobs/uploads/'), await patch(second, first.length)];
    for (const response of refused) {
      assert.equal(response.status, 503, response.text);
      assert.equal(response.headers.get('retry-after'), '5');
      const body = JSON.parse(response.text) as { errors: { code: string; message: string; detail: unknown }[] };
      assert.equal(body.errors[0]?.code, 'TOOMANYREQUESTS');
      assert.equal(body.errors[0]?.message, "the registry's blob store is unavailable; try again later");
      assert.deepEqual(body.errors[0]?.detail, { unavailable: 'blobs' });
    }
    const manifest = await call(registry.url, 'GET', '/v2/team/kept/manifests/v1', { headers: { accept: pushed.manifest.mediaType } });
    assert.equal(manifest.status, 200, 'manifests need only the metadata database');
    assert.equal((await call(registry.url, 'GET', '/v2/team/kept/tags/list')).status, 200);

    const warned = linesSaying('dependency unavailable');
    assert.equal(warned.length, refused.length, 'one line per refused request');
    for (const line of warned) {
      assert.equal(line['level'], 40);
      assert.equal(line['unavailable'], 'blobs');
      assert.equal(typeof line['requestId'], 'string');
      assert.equal(typeof line['reason'], 'string');
      assert.equal(line['err'], undefined, 'no stack');
    }
    assert.deepEqual(
      registry.logs.filter((line) => (line['level'] as number) >= 50),
      [],
      'nothing logged as an error',
    );
    assert.equal(linesSaying('the blob store is unreachable; not ready').length, 1, 'the flip is told once, not per check');
    assert.equal(await metric('berth_dependency_up', 'blobs'), 0);
    assert.equal(await metric('berth_dependency_up', 'metadata'), 1);
    assert.equal(await metric('berth_dependency_outages_total', 'blobs'), 1);
    const ready = (await (await fetch(`${registry.url}/readyz`)).json()) as { status: string; dependencies: Record<string, { status: string; reason?: string }> };
    assert.equal(ready.status, 'unavailable');
    assert.equal(ready.dependencies['blob store']?.status, 'down');
    assert.equal(ready.dependencies['metadata database']?.status, 'up');
    assert.equal((await fetch(`${registry.url}/livez`)).status, 200, 'liveness ignores the stores');

    proxy.setMode('pass');
    proxy.dropConnections();
    const recovered = Date.now();
    await eventually(async () => (await readyStatus()) === 200, { what: '/readyz answering 200', timeout: 3000 });
    const flippedUp = Date.now() - recovered;
    assert.equal(linesSaying('the blob store is reachable again; ready').length, 1);
    assert.equal(await metric('berth_dependency_up', 'blobs'), 1);

    const status = await call(registry.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${first.length - 1}`, 'the chunk acknowledged before the outage is kept; the refused one is not');
    assert.equal((await patch(second, first.length)).status, 202, 'the refused chunk, sent again');
    const finished = await call(registry.url, 'PUT', `${location}?digest=${digestOf(whole)}`);
    assert.equal(finished.status, 201, finished.text);
    await pushImage(registry.url, 'team/after', 'v1', randomImage({ layers: 1, layerSize: 1000 }));
    console.log(`# blob store black-holed (in process, health every 200 ms): not ready after ${flippedDown} ms, ready ${flippedUp} ms after it answers`);
  });
});
