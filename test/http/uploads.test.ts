import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { assertError, call, type Reply } from '../helpers/http.ts';
import { blobOf, pushBlob } from '../helpers/images.ts';
import { eventually } from '../helpers/eventually.ts';
import { registryForFile, startTestRegistry } from '../helpers/registry.ts';

const registry = registryForFile();

async function startSession(name: string): Promise<string> {
  const reply = await call(registry.url, 'POST', `/v2/${name}/blobs/uploads/`);
  assert.equal(reply.status, 202, reply.text);
  return reply.headers.get('location') as string;
}

function patch(location: string, bytes: Buffer, start?: number): Promise<Reply> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
  if (start !== undefined) headers['content-range'] = `${start}-${start + bytes.length - 1}`;
  return call(registry.url, 'PATCH', location, { headers, body: bytes });
}

async function uploadsLeft(): Promise<string[]> {
  return readdir(join(registry.dataDir, 'uploads'));
}

describe('POST /v2/<name>/blobs/uploads/', () => {
  it('opens a session: 202 with Location, Range, upload id and OCI-Chunk-Min-Length', async () => {
    const reply = await call(registry.url, 'POST', '/v2/up/session/blobs/uploads/');
    assert.equal(reply.status, 202);
    const location = reply.headers.get('location') ?? '';
    assert.match(location, /^\/v2\/up\/session\/blobs\/uploads\/[0-9a-f-]{36}$/);
    assert.equal(reply.headers.get('range'), '0-0');
    assert.equal(location.endsWith(reply.headers.get('docker-upload-uuid') ?? 'missing'), true);
    assert.match(reply.headers.get('oci-chunk-min-length') ?? '', /^\d+$/);
  });

  it('?digest= stores a monolithic upload: 201 with Location and digest', async () => {
    const blob = blobOf(randomBytes(300));
    const reply = await call(registry.url, 'POST', `/v2/up/mono/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes });
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('location'), `/v2/up/mono/blobs/${blob.digest}`);
    assert.equal(reply.headers.get('docker-content-digest'), blob.digest);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/up/mono/blobs/${blob.digest}`)).body, blob.bytes);
  });

  it('?digest= with the wrong digest is 400 DIGEST_INVALID and stores nothing', async () => {
    const before = await uploadsLeft();
    const bytes = randomBytes(50);
    const claimed = digestOf(randomBytes(50));
    assertError(await call(registry.url, 'POST', `/v2/up/wrong/blobs/uploads/?digest=${claimed}`, { body: bytes }), 400, 'DIGEST_INVALID');
    assertError(await call(registry.url, 'HEAD', `/v2/up/wrong/blobs/${claimed}`), 404, 'BLOB_UNKNOWN');
    assertError(await call(registry.url, 'HEAD', `/v2/up/wrong/blobs/${digestOf(bytes)}`), 404, 'BLOB_UNKNOWN');
    assert.deepEqual(await uploadsLeft(), before);
  });

  it('accepts sha512 digests', async () => {
    const bytes = randomBytes(40);
    const digest = digestOf(bytes, 'sha512');
    assert.equal((await call(registry.url, 'POST', `/v2/up/sha512/blobs/uploads/?digest=${digest}`, { body: bytes })).status, 201);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/up/sha512/blobs/${digest}`)).body, bytes);
  });

  it('?mount=&from= links a blob from another repository: 201', async () => {
    const blob = blobOf(randomBytes(70));
    await pushBlob(registry.url, 'up/source', blob);
    const reply = await call(registry.url, 'POST', `/v2/up/target/blobs/uploads/?mount=${blob.digest}&from=up/source`);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('location'), `/v2/up/target/blobs/${blob.digest}`);
    assert.equal(reply.headers.get('docker-content-digest'), blob.digest);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/up/target/blobs/${blob.digest}`)).body, blob.bytes);
  });

  it('a mount that cannot be done opens a session instead: 202', async () => {
    const missing = digestOf(randomBytes(8));
    const reply = await call(registry.url, 'POST', `/v2/up/target/blobs/uploads/?mount=${missing}&from=up/source`);
    assert.equal(reply.status, 202);
    assert.match(reply.headers.get('location') ?? '', /^\/v2\/up\/target\/blobs\/uploads\//);
    const noFrom = await call(registry.url, 'POST', `/v2/up/target/blobs/uploads/?mount=${missing}`);
    assert.equal(noFrom.status, 202);
  });

  it('?mount= without from links a blob any repository holds: 201', async () => {
    const blob = blobOf(randomBytes(71));
    await pushBlob(registry.url, 'up/somewhere', blob);
    const reply = await call(registry.url, 'POST', `/v2/up/automatic/blobs/uploads/?mount=${blob.digest}`);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('location'), `/v2/up/automatic/blobs/${blob.digest}`);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/up/automatic/blobs/${blob.digest}`)).body, blob.bytes);
  });

  it('registry.autoMount: false starts an upload instead', async () => {
    const other = await startTestRegistry({ 'registry.autoMount': false });
    try {
      const blob = blobOf(randomBytes(72));
      await pushBlob(other.url, 'up/somewhere', blob);
      assert.equal((await call(other.url, 'POST', `/v2/up/automatic/blobs/uploads/?mount=${blob.digest}`)).status, 202);
      assert.equal((await call(other.url, 'POST', `/v2/up/automatic/blobs/uploads/?mount=${blob.digest}&from=up/somewhere`)).status, 201);
    } finally {
      await other.close();
    }
  });

  it('a malformed mount digest or source starts a plain upload: 202 with a session', async () => {
    const blob = blobOf(randomBytes(9));
    await pushBlob(registry.url, 'up/source', blob);
    for (const query of [
      `mount=sha256:bad&from=up/source`,
      `mount=${blob.digest}&from=../x`,
      `mount=${blob.digest}&from=Bad..Name`,
      `mount=${blob.digest}&from=`,
      'mount=&from=up/source',
      'mount=sha256:bad',
    ]) {
      const reply = await call(registry.url, 'POST', `/v2/up/malformed/blobs/uploads/?${query}`);
      assert.equal(reply.status, 202, `${query}: ${reply.text}`);
      const location = reply.headers.get('location') ?? '';
      assert.match(location, /^\/v2\/up\/malformed\/blobs\/uploads\/[0-9a-f-]{36}$/, query);
      assert.equal(reply.headers.get('range'), '0-0', query);
      assert.match(reply.headers.get('oci-chunk-min-length') ?? '', /^\d+$/, query);
      assert.equal(reply.headers.get('docker-content-digest'), null, query);
      // The session works: the blob can be uploaded through it.
      const finished = await call(registry.url, 'PUT', `${location}?digest=${blob.digest}`, { body: blob.bytes });
      assert.equal(finished.status, 201, `${query}: ${finished.text}`);
    }
  });
});

describe('chunked uploads', () => {
  const data = randomBytes(30);
  const digest = digestOf(data);

  it('PATCH chunks in order, then PUT ?digest= without a body: 201', async () => {
    const location = await startSession('chunk/ok');
    const first = await patch(location, data.subarray(0, 10), 0);
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('range'), '0-9');
    assert.equal(first.headers.get('location'), location);
    const second = await patch(location, data.subarray(10, 20), 10);
    assert.equal(second.headers.get('range'), '0-19');
    const status = await call(registry.url, 'GET', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-19');
    assert.equal(status.headers.get('location'), location);
    const done = await call(registry.url, 'PUT', `${location}?digest=${digest}`, { body: data.subarray(20) });
    assert.equal(done.status, 201);
    assert.equal(done.headers.get('location'), `/v2/chunk/ok/blobs/${digest}`);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/chunk/ok/blobs/${digest}`)).body, data);
    assertError(await call(registry.url, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('streams chunks without Content-Range (as docker does)', async () => {
    const location = await startSession('chunk/stream');
    assert.equal((await patch(location, data.subarray(0, 15))).status, 202);
    assert.equal((await patch(location, data.subarray(15))).headers.get('range'), '0-29');
    assert.equal((await call(registry.url, 'PUT', `${location}?digest=${digest}`)).status, 201);
  });

  it('an out-of-order chunk is 416 with the Range to resume from', async () => {
    const location = await startSession('chunk/order');
    await patch(location, data.subarray(0, 10), 0);
    const skipped = await patch(location, data.subarray(20, 30), 20);
    assertError(skipped, 416, 'BLOB_UPLOAD_INVALID');
    assert.equal(skipped.headers.get('range'), '0-9');
    assert.equal(skipped.headers.get('location'), location);
    const repeated = await patch(location, data.subarray(0, 10), 0);
    assertError(repeated, 416, 'BLOB_UPLOAD_INVALID');
    assert.equal(repeated.headers.get('range'), '0-9');
    // The upload is intact and can be resumed.
    await patch(location, data.subarray(10), 10);
    assert.equal((await call(registry.url, 'PUT', `${location}?digest=${digest}`)).status, 201);
  });

  it('a Content-Range that disagrees with Content-Length is 400 BLOB_UPLOAD_INVALID', async () => {
    const location = await startSession('chunk/length');
    const reply = await call(registry.url, 'PATCH', location, { headers: { 'content-range': '0-99' }, body: data.subarray(0, 10) });
    assertError(reply, 400, 'BLOB_UPLOAD_INVALID');
    assertError(await call(registry.url, 'PATCH', location, { headers: { 'content-range': 'nonsense' }, body: data }), 400, 'BLOB_UPLOAD_INVALID');
    assert.equal((await call(registry.url, 'GET', location)).headers.get('range'), '0-0');
  });

  it('PUT with the wrong digest is 400 DIGEST_INVALID and drops the upload', async () => {
    const location = await startSession('chunk/wrong');
    await patch(location, data, 0);
    const wrong = digestOf(randomBytes(30));
    assertError(await call(registry.url, 'PUT', `${location}?digest=${wrong}`), 400, 'DIGEST_INVALID');
    assertError(await call(registry.url, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await call(registry.url, 'HEAD', `/v2/chunk/wrong/blobs/${wrong}`), 404, 'BLOB_UNKNOWN');
    assertError(await call(registry.url, 'HEAD', `/v2/chunk/wrong/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
  });

  it('PUT without ?digest= is 400 DIGEST_INVALID', async () => {
    const location = await startSession('chunk/nodigest');
    assertError(await call(registry.url, 'PUT', location, { body: data }), 400, 'DIGEST_INVALID');
  });

  it('DELETE cancels the upload: 204, then it is unknown', async () => {
    const location = await startSession('chunk/cancel');
    await patch(location, data, 0);
    assert.equal((await call(registry.url, 'DELETE', location)).status, 204);
    assertError(await call(registry.url, 'GET', location), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await call(registry.url, 'DELETE', location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a session belongs to its repository and unknown ids are 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const location = await startSession('chunk/mine');
    const elsewhere = location.replace('/chunk/mine/', '/chunk/theirs/');
    assertError(await call(registry.url, 'GET', elsewhere), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await patch(elsewhere, data, 0), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/chunk/mine/blobs/uploads/00000000-0000-0000-0000-000000000000'), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/chunk/mine/blobs/uploads/..%2F..%2Fetc'), 404, 'UNSUPPORTED');
  });
});

/** Sends a request whose body stops short of its Content-Length, then hangs up. */
async function sendTruncated(path: string, method: string, declared: number, sent: Buffer, extraHeaders = ''): Promise<void> {
  const { port } = new URL(registry.url);
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n${extraHeaders}\r\n`);
      socket.write(sent, () => setTimeout(() => socket.destroy(), 50));
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

describe('clients that go away mid-upload', () => {
  it('a PATCH cut short stores nothing of it; the upload resumes from where it was', async () => {
    const location = await startSession('cut/patch');
    const data = randomBytes(2000);
    await patch(location, data.subarray(0, 100), 0);
    await sendTruncated(location, 'PATCH', 1000, data.subarray(100, 600), 'Content-Range: 100-1099\r\n');
    await eventually(async () => assert.equal((await call(registry.url, 'GET', location)).headers.get('range'), '0-99'));
    await patch(location, data.subarray(100), 100);
    assert.equal((await call(registry.url, 'PUT', `${location}?digest=${digestOf(data)}`)).status, 201);
  });

  it('a monolithic upload cut short leaves no blob and no upload behind', async () => {
    const before = await uploadsLeft();
    const data = randomBytes(5000);
    const digest = digestOf(data);
    await sendTruncated(`/v2/cut/mono/blobs/uploads/?digest=${digest}`, 'POST', 5000, data.subarray(0, 2000));
    await eventually(async () => assert.deepEqual(await uploadsLeft(), before));
    assertError(await call(registry.url, 'HEAD', `/v2/cut/mono/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
  });
});

describe('concurrent pushes', () => {
  it('of the same blob all succeed and leave one stored copy', async () => {
    const before = await uploadsLeft();
    const blob = blobOf(randomBytes(256 * 1024));
    const replies = await Promise.all(
      Array.from({ length: 8 }, (_, index) => call(registry.url, 'POST', `/v2/same/r${index % 3}/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes })),
    );
    assert.deepEqual(
      replies.map((reply) => reply.status),
      Array(8).fill(201),
    );
    for (let index = 0; index < 3; index++) {
      assert.deepEqual((await call(registry.url, 'GET', `/v2/same/r${index}/blobs/${blob.digest}`)).body, blob.bytes);
    }
    const hex = blob.digest.slice('sha256:'.length);
    const stored = await readdir(join(registry.dataDir, 'blobs', 'sha256', hex.slice(0, 2)));
    assert.deepEqual(
      stored.filter((name) => name.includes(hex)),
      [hex],
    );
    assert.deepEqual(await uploadsLeft(), before);
  });
});
