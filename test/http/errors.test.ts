import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorCodes } from '../../src/errors/registry-error.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertError, assertOciBody, call, openSocket, rawCall, untilClosed } from '../helpers/http.ts';
import { randomImage } from '../helpers/images.ts';
import { injectPushImage } from '../helpers/inject.ts';
import { createTestApp, registryForFile, startTestRegistry, type TestApp } from '../helpers/registry.ts';

const registry = registryForFile();
let app: TestApp;
before(async () => {
  app = await createTestApp();
});
after(() => app.close());

describe('the API root and health', () => {
  it('GET /v2/ is 200 with the API version header', async () => {
    const reply = await call(registry.url, 'GET', '/v2/');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get('docker-distribution-api-version'), 'registry/2.0');
    assert.equal((await call(registry.url, 'GET', '/v2')).status, 200);
  });
  it('GET /healthz is 200', async () => {
    const reply = await call(registry.url, 'GET', '/healthz');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json(), { status: 'ok' });
  });
  it('echoes a request id, or makes one', async () => {
    assert.equal((await call(registry.url, 'GET', '/v2/', { headers: { 'x-request-id': 'trace-123' } })).headers.get('x-request-id'), 'trace-123');
    assert.match((await call(registry.url, 'GET', '/v2/')).headers.get('x-request-id') ?? '', /^[0-9a-f]{16,}$/);
  });
});

describe('names are checked before anything touches storage', () => {
  const bad = ['Upper/case', 'a/../b', '..', 'a//b', 'trailing-', `${'a'.repeat(300)}`, 'sp%20ace', 'a/./b', '%2e%2e/x'];
  for (const name of bad) {
    for (const [method, path] of [
      ['GET', 'tags/list'],
      ['GET', 'manifests/latest'],
      ['POST', 'blobs/uploads/'],
      ['HEAD', `blobs/sha256:${'a'.repeat(64)}`],
    ] as const) {
      it(`${method} ${name.length > 30 ? `${name.slice(0, 10)}…(${name.length})` : name}/${path.slice(0, 16)} → 400 NAME_INVALID`, async () => {
        const response = await rawCall(registry.url, method, `/v2/${name}/${path}`);
        assert.equal(response.status, 400, response.text);
        if (method !== 'HEAD') assert.equal((JSON.parse(response.text) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_INVALID');
      });
    }
  }
});

describe('routing errors', () => {
  it('an unknown endpoint is 404 UNSUPPORTED in the spec format', async () => {
    assertError(await call(registry.url, 'GET', '/v2/a/unknown/thing'), 404, 'UNSUPPORTED');
    assertError(await call(registry.url, 'GET', '/elsewhere'), 404, 'UNSUPPORTED');
  });
  it('a URL the framework cannot decode is 400 in the spec format', async () => {
    const response = await rawCall(registry.url, 'GET', '/v2/%ff');
    assert.equal(response.status, 400);
    const body = JSON.parse(response.text) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'UNSUPPORTED');
    assert.doesNotMatch(response.text, /FST_ERR/);
  });
  const digest = `sha256:${'a'.repeat(64)}`;
  for (const [method, path, allow] of [
    ['PUT', '/v2/', 'GET, HEAD'],
    ['DELETE', '/v2', 'GET, HEAD'],
    ['OPTIONS', '/v2/', 'GET, HEAD'],
    ['DELETE', '/v2/_catalog', 'GET, HEAD'],
    ['POST', '/v2/_catalog', 'GET, HEAD'],
    ['POST', '/v2/t/a/tags/list', 'GET, HEAD'],
    ['OPTIONS', '/v2/t/a/tags/list', 'GET, HEAD'],
    ['PATCH', '/v2/t/a/manifests/latest', 'GET, HEAD, PUT, DELETE'],
    ['PUT', '/v2/t/a/blobs/uploads/', 'POST'],
    ['POST', '/v2/t/a/blobs/uploads/0b0e7a56-6a0b-4f5e-9d39-3c6c8f0e8a11', 'GET, PATCH, PUT, DELETE, HEAD'],
    ['PUT', `/v2/t/a/blobs/${digest}`, 'GET, HEAD, DELETE'],
    ['DELETE', `/v2/t/a/referrers/${digest}`, 'GET, HEAD'],
  ] as const) {
    it(`${method} ${path} is 405 UNSUPPORTED with Allow: ${allow}`, async () => {
      const reply = await call(registry.url, method, path);
      assertError(reply, 405, 'UNSUPPORTED');
      assert.equal(reply.headers.get('allow'), allow);
    });
  }
  it('HEAD works wherever GET does: the same status and headers, no body', async () => {
    await injectPushImage(app.app, 'none', 't/head', 'v1', randomImage({ layers: 1 }));
    for (const path of ['/v2/', '/v2/_catalog', '/v2/t/head/tags/list', `/v2/t/head/referrers/${digest}`]) {
      const get = await app.app.inject({ method: 'GET', url: path });
      const head = await app.app.inject({ method: 'HEAD', url: path });
      assert.equal(get.statusCode, 200, `${path}: ${get.body}`);
      assert.equal(head.statusCode, 200, path);
      assert.equal(head.body, '', path);
      assert.equal(head.headers['content-type'], get.headers['content-type'], path);
      assert.equal(head.headers['content-length'], String(get.rawPayload.byteLength), path);
    }
    assert.equal((await call(registry.url, 'HEAD', '/v2/_catalog')).status, 200);
  });
});

describe('what Node and the framework refuse before any handler runs is in the spec format too', () => {
  /** Sends `text` on a connection of its own and returns the raw answer. */
  async function exchange(text: string): Promise<string> {
    const socket = await openSocket(registry.host);
    const closed = untilClosed(socket);
    socket.write(text);
    return closed;
  }

  it('an HTTP/1.1 request without Host is 400 UNSUPPORTED, not an empty 400', async () => {
    const received = await exchange('GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.match(received, /^HTTP\/1\.1 400 /);
    assertOciBody(received, 'UNSUPPORTED', /no Host header/);
  });

  it('an Expect header other than 100-continue is 417 UNSUPPORTED, not an empty 417', async () => {
    const received = await exchange('GET /v2/ HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n');
    assert.match(received, /^HTTP\/1\.1 417 /);
    assertOciBody(received, 'UNSUPPORTED', /expectation "teapot" is not supported/);
  });

  it('a request that arrives while the server drains is 503 TOOMANYREQUESTS with Retry-After', async () => {
    const draining = await startTestRegistry();
    const socket = await openSocket(draining.host);
    const answered = untilClosed(socket);
    // Headers begun before the stop: the connection is busy, so stopping does not close it.
    socket.write('GET /v2/a/tags/list HTTP/1.1\r\nHost: x\r\n');
    await sleep(100);
    const stopped = draining.close();
    await sleep(100);
    socket.write('\r\n');
    const received = await answered;
    await stopped;
    assert.match(received, /^HTTP\/1\.1 503 /);
    assert.match(received, /\r\nretry-after: 5\r\n/i);
    assert.doesNotMatch(received, /"statusCode"/);
    assertOciBody(received, 'TOOMANYREQUESTS', /shutting down/);
  });
});

describe('internal failures', () => {
  it('are 500 UNKNOWN with a request id and no internal detail', async () => {
    const test = await createTestApp();
    try {
      const fail = async (): Promise<never> => {
        throw new Error('secret: /var/lib/berth/berth.db is locked');
      };
      test.registry.meta.tags.list = fail;
      test.registry.meta.tags.version = fail;
      const response = await test.app.inject({ method: 'GET', url: '/v2/any/tags/list' });
      assert.equal(response.statusCode, 500);
      const body = response.json<{ errors: { code: string; message: string; detail: { requestId: string } }[] }>();
      assert.equal(body.errors[0]?.code, 'UNKNOWN');
      assert.equal(body.errors[0]?.detail.requestId, response.headers['x-request-id']);
      assert.doesNotMatch(response.body, /secret|berth\.db|Error/);
    } finally {
      await test.close();
    }
  });
});

describe('the error catalog', () => {
  it('maps every code to a 4xx or 5xx status and a message', () => {
    for (const [code, entry] of Object.entries(errorCodes)) {
      assert.ok(entry.status >= 400 && entry.status < 600, code);
      assert.ok(entry.message.length > 0, code);
      assert.match(code, /^[A-Z_]+$/);
    }
  });
  it('holds only the spec table, plus what Distribution answers (TAG_INVALID) and 500 UNKNOWN', () => {
    const spec = [
      'BLOB_UNKNOWN',
      'BLOB_UPLOAD_INVALID',
      'BLOB_UPLOAD_UNKNOWN',
      'DIGEST_INVALID',
      'MANIFEST_BLOB_UNKNOWN',
      'MANIFEST_INVALID',
      'MANIFEST_UNKNOWN',
      'NAME_INVALID',
      'NAME_UNKNOWN',
      'SIZE_INVALID',
      'UNAUTHORIZED',
      'DENIED',
      'UNSUPPORTED',
      'TOOMANYREQUESTS',
    ];
    assert.deepEqual(Object.keys(errorCodes).sort(), [...spec, 'TAG_INVALID', 'UNKNOWN'].sort());
  });
});
