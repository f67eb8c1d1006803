import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { Forwarder } from '../proxy/forwarder.ts';

/** Log lines at warn (40) or above, besides the open-registry notice every test registry logs at start. */
function problems(registry: TestRegistry): Record<string, unknown>[] {
  return registry.logs.filter((line) => (line['level'] as number) >= 40 && !String(line['msg']).startsWith('access control is off'));
}

/** Sends part of a body, then goes away. */
async function goAway(registry: TestRegistry, method: string, path: string): Promise<void> {
  const { port } = new URL(registry.url);
  const outgoing = request({ host: '127.0.0.1', port, method, path, headers: { 'content-length': 100_000 } });
  outgoing.on('error', () => undefined);
  outgoing.write(Buffer.alloc(1000));
  await sleep(150);
  outgoing.destroy();
}

describe('expected conditions are logged at their level, in one line without a stack', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({}, { captureLogs: true });
  });
  after(() => registry.close());

  it('a client that goes away mid-upload is info, not error', async () => {
    const location = (await call(registry.url, 'POST', '/v2/gone/app/blobs/uploads/')).headers.get('location') as string;
    await goAway(registry, 'PATCH', location);
    await goAway(registry, 'POST', `/v2/gone/app/blobs/uploads/?digest=sha256:${'a'.repeat(64)}`);
    const gone = await eventually(
      () => {
        const lines = registry.logs.filter((line) => line['msg'] === 'the client went away before the response was complete');
        return lines.length === 2 && lines;
      },
      { what: 'a line for each client that went away' },
    );
    assert.deepEqual(problems(registry), []);
    assert.equal(gone[0]?.['level'], 30);
    assert.equal(gone[0]?.['err'], undefined);
  });

  it('an upstream outage in a proxy is one warn line per request, without a stack', async () => {
    const upstream = await startTestRegistry();
    const forwarder = await Forwarder.start(upstream.url);
    const proxy = await startTestRegistry({ repositories: [{ prefix: 'up/', kind: 'proxy', upstream: forwarder.url }] }, { captureLogs: true });
    try {
      const image = randomImage();
      await pushImage(upstream.url, 'lib/app', 'v1', image);
      await forwarder.close();
      const reply = await call(proxy.url, 'GET', '/v2/up/lib/app/manifests/v1', { headers: { accept: image.manifest.mediaType } });
      assert.equal(reply.status, 502);
      const lines = problems(proxy);
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0]?.['level'], 40);
      assert.match(String(lines[0]?.['msg']), /upstream .* is unreachable/);
      assert.doesNotMatch(JSON.stringify(lines[0]), /"stack"/);
    } finally {
      await proxy.close();
      await forwarder.close().catch(() => undefined);
      await upstream.close();
    }
  });
});
