import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { staticCredentials } from '../../src/client/credentials.ts';
import { UpstreamError } from '../../src/client/errors.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { httpRequest } from '../../src/io/http-request.ts';
import { parseRepositoryName } from '../../src/oci/names.ts';
import { blobOf } from '../helpers/images.ts';

const repository = parseRepositoryName('client/app');
const quickRetries = { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 };

/** A loopback HTTP server whose handler the test sets; records each request's headers. */
async function stubServer(): Promise<{
  url: string;
  seen: { url: string; headers: IncomingHttpHeaders }[];
  handle: (respond: (path: string, headers: IncomingHttpHeaders, response: ServerResponse) => void) => void;
  server: Server;
}> {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  let handler: (path: string, headers: IncomingHttpHeaders, response: ServerResponse) => void = (_path, _headers, response) => response.end();
  const server = createServer((request, response) => {
    seen.push({ url: request.url ?? '', headers: request.headers });
    request.resume();
    request.on('end', () => handler(request.url ?? '', request.headers, response));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, handle: (next) => (handler = next), server };
}

describe('the HTTP the registry client sends (undici request, not fetch)', () => {
  let registry: Awaited<ReturnType<typeof stubServer>>;
  let storage: Awaited<ReturnType<typeof stubServer>>;
  before(async () => {
    registry = await stubServer();
    storage = await stubServer();
  });
  after(async () => {
    registry?.server.closeAllConnections();
    storage?.server.closeAllConnections();
    await new Promise((resolve) => registry?.server.close(resolve));
    await new Promise((resolve) => storage?.server.close(resolve));
  });

  test('a 307 to presigned storage is followed without our Authorization; the body streams through', async () => {
    const blob = blobOf(randomBytes(300 * 1024));
    const basic = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
    registry.handle((path, headers, response) => {
      if (headers.authorization !== basic) {
        response.writeHead(401, { 'www-authenticate': 'Basic realm="test"' }).end();
      } else if (path.includes('/blobs/')) {
        response.writeHead(307, { location: `${storage.url}/bucket/${blob.digest}?X-Signature=secret` }).end();
      } else {
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      }
    });
    storage.handle((_path, _headers, response) => response.writeHead(200, { 'content-length': String(blob.bytes.length) }).end(blob.bytes));
    const client = new RegistryClient({ host: new URL(registry.url).host, baseUrl: registry.url, retry: quickRetries, credentials: staticCredentials('alice', 'wonderland') });
    const { stream, size } = await client.openBlob(repository, blob.digest);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    assert.equal(size, blob.bytes.length);
    assert.deepEqual(Buffer.concat(chunks), blob.bytes);
    assert.equal(registry.seen.at(-1)?.headers.authorization, basic);
    assert.equal(storage.seen.length, 1);
    assert.equal(storage.seen[0]?.headers.authorization, undefined, 'Authorization must not follow to another origin');
    assert.match(storage.seen[0]?.url ?? '', /X-Signature=secret/);
  });

  test('a registry that never answers fails after the timeout, as a temporary network error', async () => {
    registry.handle(() => undefined);
    const client = new RegistryClient({ host: new URL(registry.url).host, baseUrl: registry.url, retry: quickRetries, timeoutMs: 200 });
    await assert.rejects(client.ping(), (error: unknown) => error instanceof UpstreamError && error.unreachable && /no response within 200 ms/.test(error.message));
  });

  test('an abort signal stops a body that is still arriving', async () => {
    storage.handle((_path, _headers, response) => {
      response.writeHead(200, { 'content-length': String(1024 * 1024) });
      response.write(Buffer.alloc(1024));
    });
    const controller = new AbortController();
    const response = await httpRequest(`${storage.url}/slow`, { signal: controller.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    assert.equal((await reader.read()).value?.byteLength, 1024);
    controller.abort(new Error('stop'));
    await assert.rejects(reader.read());
  });

  test('HEAD and 204 answers have no body; repeated headers are all kept; the response names its URL', async () => {
    storage.handle((_path, _headers, response) => {
      response.setHeader('link', ['<a>; rel="next"', '<b>; rel="prev"']);
      response.writeHead(204).end();
    });
    const empty = await httpRequest(`${storage.url}/empty`, { method: 'DELETE' });
    assert.equal(empty.status, 204);
    assert.equal(empty.body, null);
    assert.equal(empty.headers.get('link'), '<a>; rel="next", <b>; rel="prev"');
    assert.equal(empty.url, `${storage.url}/empty`);
    storage.handle((_path, _headers, response) => response.writeHead(200, { 'content-length': '5' }).end('hello'));
    const head = await httpRequest(`${storage.url}/head`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '5');
    assert.equal(head.body, null);
  });

  test('a streamed request body arrives whole, with its content-length', async () => {
    const bytes = randomBytes(200 * 1024);
    let received = Buffer.alloc(0);
    let length: string | undefined;
    const server = createServer((request, response) => {
      length = request.headers['content-length'];
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        received = Buffer.concat(chunks);
        response.writeHead(201).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const body = new Blob([bytes]).stream();
      const response = await httpRequest(`http://127.0.0.1:${(server.address() as AddressInfo).port}/upload`, {
        method: 'PUT',
        headers: { 'content-length': String(bytes.length) },
        body,
      });
      assert.equal(response.status, 201);
      assert.equal(length, String(bytes.length));
      assert.deepEqual(received, bytes);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
