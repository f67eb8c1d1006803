import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { openSecurity, type Security } from '../../src/access-tls-limits.ts';
import { loadConfig } from '../../src/config/load.ts';
import { createApp } from '../../src/http/app.ts';
import { openRegistry, type Registry } from '../../src/server.ts';
import { authSettings, basic } from '../helpers/auth.ts';
import { pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { tempDir } from '../helpers/tmp.ts';

/**
 * Hot reads (src/http/hot-reads.ts) answer manifest GET/HEAD and blob HEAD
 * before the framework. These tests run a real listening app and compare
 * each request answered that way with the same request answered by the app
 * (an unknown query parameter sends it there): the same status, headers,
 * body, access-log line and metrics. An onRequest hook tells which of the
 * two answered.
 */
for (const trustProxy of [false, true]) {
  describe(`hot reads${trustProxy ? ', behind a trusted proxy' : ''}`, () => {
    let temp: Awaited<ReturnType<typeof tempDir>>;
    let registry: Registry;
    let security: Security;
    let app: FastifyInstance;
    let url: string;
    const logs: Record<string, unknown>[] = [];
    /** Paths (with query) of the requests the app answered. */
    const reachedApp: string[] = [];
    const image: TestImage = randomImage();
    /** What a proxy in front adds; read only when it is trusted. */
    const forwarded = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example' };
    const alice = basic('alice', 'alice-password');

    before(async () => {
      temp = await tempDir('berth-hot-reads');
      const settings = await authSettings(temp.path, {
        users: { alice: 'alice-password' },
        rules: { rules: [{ repositories: 'pub/**', anonymous: ['pull'], grants: { alice: ['pull', 'push', 'delete'] } }] },
        extra: { 'auth.failedSignIns': { limit: 3, per: '1m' }, 'limits.trustProxy': trustProxy },
      });
      const config = await loadConfig({ env: {}, overrides: { listen: '127.0.0.1:0', dataDir: temp.path, ...settings } });
      const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) });
      registry = await openRegistry(config, logger);
      security = await openSecurity(config, logger);
      app = createApp({
        ...security.app,
        router: registry.router,
        settings: { maxManifestBytes: config.registry.maxManifestBytes, chunkMinLength: registry.blobs.chunkMinLength },
        logger,
        observers: registry.operations.observers(),
        v2Endpoints: registry.v2Endpoints,
      });
      app.addHook('onRequest', (request, _reply, done) => {
        reachedApp.push(request.url);
        done();
      });
      const address = await app.listen({ host: '127.0.0.1', port: 0 });
      url = address;
      await pushImage(url, 'pub/app', 'v1', image, alice);
    });

    after(async () => {
      await app?.close();
      await security?.close();
      await registry?.close();
      await temp?.remove();
    });

    /** Sends one request; what came back, its access-log line and whether the app answered it. */
    async function send(method: string, path: string, headers: Record<string, string> = {}) {
      const before = reachedApp.length;
      const response = await fetch(`${url}${path}`, { method, headers });
      const body = Buffer.from(await response.arrayBuffer());
      // The line is written once the response is done: wait for it.
      let line: Record<string, unknown> | undefined;
      for (let tries = 0; line === undefined && tries < 100; tries++) {
        line = logs.findLast((each) => each['msg'] === 'request' && each['path'] === path);
        if (line === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const kept: Record<string, string> = {};
      for (const [name, value] of response.headers) if (!['date', 'x-request-id'].includes(name)) kept[name] = value;
      return { status: response.status, headers: kept, body, line, byApp: reachedApp.length > before, requestId: response.headers.get('x-request-id') };
    }

    /** An access-log line without what differs between any two requests. */
    function comparable(line: Record<string, unknown> | undefined): Record<string, unknown> {
      assert.ok(line !== undefined, 'an access-log line was written');
      const { time: _time, reqId: _reqId, durationMs, path: _path, ...rest } = line;
      assert.equal(typeof durationMs, 'number');
      return rest;
    }

    const reads = () => [
      { name: 'manifest GET by tag', method: 'GET', path: '/v2/pub/app/manifests/v1' },
      { name: 'manifest GET by digest', method: 'GET', path: `/v2/pub/app/manifests/${image.manifest.digest}` },
      { name: 'manifest HEAD by tag', method: 'HEAD', path: '/v2/pub/app/manifests/v1' },
      { name: 'manifest HEAD by digest', method: 'HEAD', path: `/v2/pub/app/manifests/${image.manifest.digest}` },
      { name: 'blob HEAD', method: 'HEAD', path: `/v2/pub/app/blobs/${image.layers[0]?.digest}` },
    ];

    for (const credentials of ['anonymous', 'Basic'] as const) {
      it(`answer what the app answers, ${credentials}: status, headers, body and the access-log line`, async () => {
        const headers: Record<string, string> = { accept: image.manifest.mediaType, 'user-agent': 'hot-reads-test', ...forwarded };
        if (credentials === 'Basic') headers['authorization'] = alice;
        for (const read of reads()) {
          const hot = await send(read.method, read.path, headers);
          const byApp = await send(read.method, `${read.path}?via=app`, headers);
          assert.equal(hot.byApp, false, `${read.name}: answered before the app`);
          assert.equal(byApp.byApp, true, `${read.name}: the comparison went to the app`);
          assert.equal(hot.status, 200, read.name);
          assert.deepEqual(hot.headers, byApp.headers, read.name);
          assert.deepEqual(hot.body, byApp.body, read.name);
          assert.deepEqual(comparable(hot.line), comparable(byApp.line), read.name);
          assert.equal(hot.line?.['reqId'], hot.requestId, `${read.name}: the line names the request id sent`);
          assert.equal(hot.line?.['user'], credentials === 'Basic' ? 'alice' : undefined, read.name);
          assert.equal(hot.line?.['client'], trustProxy ? '198.51.100.1' : '127.0.0.1', `${read.name}: the client as the app reads it`);
        }
        const manifest = await send('GET', '/v2/pub/app/manifests/v1', headers);
        assert.deepEqual(manifest.body, image.manifest.bytes);
      });
    }

    it('count in the request metrics as the app does', async () => {
      const count = async (method: string) =>
        (await registry.operations.metrics.requests.get()).values.find(
          (value) => value.labels['endpoint'] === 'manifest' && value.labels['method'] === method && String(value.labels['status']) === '200',
        )?.value ?? 0;
      const before = await count('HEAD');
      await send('HEAD', '/v2/pub/app/manifests/v1');
      await send('HEAD', '/v2/pub/app/manifests/v1?via=app');
      assert.equal((await count('HEAD')) - before, 2);
    });

    it("take the client's X-Request-Id, as the app does", async () => {
      const hot = await send('HEAD', '/v2/pub/app/manifests/v1', { 'x-request-id': 'client-chosen-1' });
      assert.equal(hot.byApp, false);
      assert.equal(hot.requestId, 'client-chosen-1');
      assert.equal(hot.line?.['reqId'], 'client-chosen-1');
    });

    it("serve containerd's ?ns= mirror requests too", async () => {
      const hot = await send('HEAD', '/v2/pub/app/manifests/v1?ns=registry.example', {});
      assert.equal(hot.byApp, false);
      assert.equal(hot.status, 200);
    });

    it('leave conditional and range requests, other endpoints and other methods to the app', async () => {
      const digest = image.manifest.digest;
      const cases: [string, string, Record<string, string>, number][] = [
        ['GET', '/v2/pub/app/manifests/v1', { 'if-none-match': `"${digest}"` }, 304],
        ['HEAD', `/v2/pub/app/blobs/${image.layers[0]?.digest}`, { range: 'bytes=0-9' }, 206],
        ['GET', `/v2/pub/app/blobs/${image.layers[0]?.digest}`, {}, 200],
        ['GET', '/v2/pub/app/tags/list', {}, 200],
        ['DELETE', '/v2/pub/app/manifests/v1', {}, 401],
        ['GET', '/v2/', { authorization: alice }, 200],
        ['GET', `/v2/pub/app/manifests/${digest.replace(':', '%3A')}`, {}, 200],
        ['HEAD', '/v2/pub/app/manifests/v1?ns=registry%2Eexample', {}, 200],
      ];
      for (const [method, path, headers, status] of cases) {
        const answer = await send(method, path, headers);
        assert.equal(answer.byApp, true, `${method} ${path} ${JSON.stringify(headers)}`);
        assert.equal(answer.status, status, `${method} ${path}`);
      }
    });

    it("hand failures to the app's error path, with one access-log line each", async () => {
      const cases: [string, Record<string, string>, number, string][] = [
        ['/v2/pub/app/manifests/nope', {}, 404, 'MANIFEST_UNKNOWN'],
        ['/v2/pub/app/manifests/bad!tag', {}, 404, 'MANIFEST_UNKNOWN'],
        ['/v2/pub/other/manifests/v1', {}, 404, 'MANIFEST_UNKNOWN'],
        ['/v2/private/app/manifests/v1', {}, 401, 'UNAUTHORIZED'],
        ['/v2/private/app/manifests/v1', { authorization: alice }, 403, 'DENIED'],
        ['/v2/pub/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000', {}, 404, 'BLOB_UNKNOWN'],
      ];
      for (const [path, headers, status, code] of cases) {
        const method = path.includes('/blobs/') ? 'HEAD' : 'GET';
        const answer = await send(method, path, headers);
        assert.equal(answer.status, status, path);
        assert.equal(answer.byApp, true, `${path}: the app answered`);
        if (method === 'GET') assert.equal((JSON.parse(answer.body.toString()) as { errors: { code: string }[] }).errors[0]?.code, code, path);
        assert.equal(answer.line?.['status'], status, path);
        assert.equal(logs.filter((each) => each['msg'] === 'request' && each['reqId'] === answer.requestId).length, 1, `${path}: one line`);
      }
      const challenged = await send('GET', '/v2/private/app/manifests/v1');
      assert.match(challenged.headers['www-authenticate'] ?? '', /^Basic realm=/);
    });

    it('count a wrong password once, not once per path', async () => {
      const wrong = basic('alice', 'not-her-password');
      // The limit is 3 failures a minute: 3 wrong answers, then the 4th is refused as too many.
      const statuses: number[] = [];
      for (let attempt = 0; attempt < 4; attempt++) statuses.push((await send('GET', '/v2/pub/app/manifests/v1', { authorization: wrong })).status);
      assert.deepEqual(statuses, [401, 401, 401, 429]);
    });
  });
}
