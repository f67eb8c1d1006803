import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { spawnBerth, startBerthServer } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

let dir: { path: string; remove(): Promise<void> };
before(async () => {
  dir = await tempDir('berth-cli');
});
after(() => dir.remove());

describe('berth serve', () => {
  it('writes one JSON access-log line per request', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'log')]);
    try {
      await call(berth.url, 'GET', '/v2/', { headers: { 'user-agent': 'log-test/1.0' } });
      await call(berth.url, 'GET', '/v2/nothing/tags/list', { headers: { 'user-agent': 'log-test/1.0' } });
      const line = await berth.waitFor(/"path":"\/v2\/nothing\/tags\/list"/);
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry['method'], 'GET');
      assert.equal(entry['status'], 404);
      assert.equal(typeof entry['bytes'], 'number');
      assert.ok((entry['bytes'] as number) > 0);
      assert.equal(typeof entry['durationMs'], 'number');
      assert.equal(entry['client'], '127.0.0.1');
      assert.equal(entry['userAgent'], 'log-test/1.0');
      assert.equal(berth.lines.filter((text) => text.includes('"path":"/v2/"')).length, 1);
    } finally {
      await berth.stop();
    }
  });

  it('on SIGTERM finishes the request in flight, then exits 0', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'term')]);
    try {
      const started = await call(berth.url, 'POST', '/v2/slow/blobs/uploads/');
      const location = started.headers.get('location') as string;
      const { port } = new URL(berth.url);
      const chunk = randomBytes(1000);
      // Expect: 100-continue tells us when the server has taken the request in.
      const outgoing = request({ host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'content-length': chunk.length * 2, expect: '100-continue' } });
      const status = new Promise<number>((resolve, reject) => {
        outgoing.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        outgoing.on('error', reject);
      });
      await once(outgoing, 'continue');
      outgoing.write(chunk);
      berth.child.kill('SIGTERM');
      await berth.waitFor(/stopping: finishing in-flight requests/);
      // The rest arrives after the server began to stop.
      outgoing.end(chunk);
      assert.equal(await status, 202);
      assert.equal(await berth.exited, 0);
      assert.ok(berth.lines.some((line) => line.includes('"msg":"stopped"')));
    } finally {
      await berth.stop();
    }
  });

  it('stops with exit code 3 and the key named when the configuration is wrong', async () => {
    const file = join(dir.path, 'bad.yaml');
    await writeFile(file, 'registry:\n  maxManifestBytez: 10\n');
    const berth = spawnBerth(['serve', '--config', file, '--data', join(dir.path, 'bad')]);
    assert.equal(await berth.exited, 3);
    assert.match(berth.stderr(), /registry\.maxManifestBytez: unknown key/);
    const badEnv = spawnBerth(['serve', '--data', join(dir.path, 'bad')], { BERTH_LISTEN: 'nowhere' });
    assert.equal(await badEnv.exited, 3);
    assert.match(badEnv.stderr(), /listen: expected HOST:PORT.*BERTH_LISTEN/);
  });

  it('explains itself with --help and refuses unknown commands with exit code 2', async () => {
    const help = spawnBerth(['--help']);
    assert.equal(await help.exited, 0);
    assert.ok(help.lines.some((line) => line.includes('serve')));
    const unknown = spawnBerth(['fly']);
    assert.equal(await unknown.exited, 2);
  });
});
