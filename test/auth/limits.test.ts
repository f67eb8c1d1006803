import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RateLimiter } from '../../src/io/rate-limiter.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { assertOciBody, openSocket, untilClosed } from '../helpers/http.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';

describe('server limits', () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry({
      'limits.maxHeaderBytes': '4KiB',
      'limits.headersTimeout': '600ms',
      'limits.idleTimeout': '600ms',
      'limits.maxBlobBytes': '1KiB',
      'limits.rateLimit': { requests: 20, per: '1h', burst: 20 },
    });
  });
  after(async () => {
    await registry.close();
  });

  it('refuses oversized headers with 431 before any handler runs', async () => {
    const socket = await openSocket(registry.host);
    const closed = untilClosed(socket);
    socket.write(`GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(8 * 1024)}\r\n\r\n`);
    const received = await closed;
    assert.match(received, /^HTTP\/1\.1 431 /);
    assertOciBody(received, 'UNSUPPORTED', /exceed the limit/);
  });

  it('answers bytes that are not HTTP with 400 in the spec format', async () => {
    const socket = await openSocket(registry.host);
    const closed = untilClosed(socket);
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    const received = await closed;
    assert.match(received, /^HTTP\/1\.1 400 /);
    assertOciBody(received, 'UNSUPPORTED', /not valid HTTP/);
  });

  it('cuts off a slow-loris client that never finishes its headers', async () => {
    const socket = await openSocket(registry.host);
    const closed = untilClosed(socket);
    socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n');
    let sent = 0;
    const drip = setInterval(() => {
      if (!socket.destroyed && socket.writable) {
        socket.write(`X-Slow-${sent}: y\r\n`);
        sent += 1;
      }
    }, 100);
    try {
      const received = await closed;
      assert.match(received, /^HTTP\/1\.1 408 /);
      assertOciBody(received, 'UNSUPPORTED', /did not arrive in time/);
    } finally {
      clearInterval(drip);
    }
  });

  it('closes a connection that sends nothing', async () => {
    const socket = await openSocket(registry.host);
    // Closed by the idle timeout (silently) or the headers timeout (408), whichever fires first.
    assert.match(await untilClosed(socket), /^(|HTTP\/1\.1 408 [\s\S]*)$/);
  });

  it('refuses blobs over limits.maxBlobBytes, declared or streamed', async () => {
    const big = randomBytes(2048);
    const monolithic = await fetch(`${registry.url}/v2/limits/blob/blobs/uploads/?digest=${digestOf(big)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: big,
    });
    assert.equal(monolithic.status, 413);
    assert.equal(((await monolithic.json()) as { errors: { code: string }[] }).errors[0]?.code, 'SIZE_INVALID');
    const started = await fetch(`${registry.url}/v2/limits/blob/blobs/uploads/`, { method: 'POST' });
    const location = started.headers.get('location') as string;
    const streamed = await fetch(`${registry.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        start(controller) {
          for (let index = 0; index < 4; index += 1) controller.enqueue(randomBytes(512));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    assert.equal(streamed.status, 413);
    const status = await fetch(`${registry.url}${location}`);
    assert.equal(status.headers.get('range'), '0-0', 'nothing of the refused chunk was kept');
  });

  it('answers 429 TOOMANYREQUESTS with Retry-After once a client is over its rate', async () => {
    let response: Response | undefined;
    for (let count = 0; count < 30; count += 1) {
      response = await fetch(`${registry.url}/v2/`);
      if (response.status === 429) break;
      await response.arrayBuffer();
    }
    assert.equal(response?.status, 429);
    assert.ok(Number(response?.headers.get('retry-after')) >= 1);
    const body = (await response?.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, 'TOOMANYREQUESTS');
    assert.match(body.errors[0]?.message ?? '', /limit is 20 per 3600s/);
  });
});

describe('RateLimiter', () => {
  it('allows a burst, then the sustained rate, per client, and forgets the least recent clients', () => {
    const limiter = new RateLimiter({ requests: 2, per: 1000, burst: 3, clients: 2 });
    const start = 1_000_000;
    assert.deepEqual(
      [0, 1, 2].map(() => limiter.take('a', start)),
      [undefined, undefined, undefined],
    );
    assert.equal(limiter.take('a', start), 1);
    assert.equal(limiter.take('b', start), undefined, 'clients are counted apart');
    assert.equal(limiter.take('a', start + 500), undefined, 'one request back after half a second at 2/s');
    assert.equal(limiter.take('a', start + 500), 1);
    limiter.take('c', start + 500);
    assert.equal(limiter.take('b', start + 500), undefined);
  });
});
