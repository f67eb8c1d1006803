import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { assertError, call } from '../helpers/http.ts';
import { blobOf, pushBlob } from '../helpers/images.ts';
import { eventually } from '../helpers/eventually.ts';
import { registryForFile, startTestRegistry } from '../helpers/registry.ts';

const registry = registryForFile();

const blob = blobOf(randomBytes(100));

describe('GET and HEAD /v2/<name>/blobs/<digest>', () => {
  before(() => pushBlob(registry.url, 'blobs/a', blob));

  it('GET returns the bytes with digest, length and type', async () => {
    const reply = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`);
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.body, blob.bytes);
    assert.equal(reply.headers.get('docker-content-digest'), blob.digest);
    assert.equal(reply.headers.get('content-length'), '100');
    assert.equal(reply.headers.get('content-type'), 'application/octet-stream');
    assert.equal(reply.headers.get('accept-ranges'), 'bytes');
    assert.equal(reply.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('HEAD returns the same headers and no body', async () => {
    const reply = await call(registry.url, 'HEAD', `/v2/blobs/a/blobs/${blob.digest}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, 0);
    assert.equal(reply.headers.get('content-length'), '100');
    assert.equal(reply.headers.get('docker-content-digest'), blob.digest);
  });

  it('a blob is readable only in repositories it was pushed or mounted into', async () => {
    assertError(await call(registry.url, 'GET', `/v2/blobs/other/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
    assertError(await call(registry.url, 'HEAD', `/v2/blobs/other/blobs/${blob.digest}`), 404, 'BLOB_UNKNOWN');
  });

  it('an unknown blob is 404 BLOB_UNKNOWN, a malformed digest 400 DIGEST_INVALID', async () => {
    assertError(await call(registry.url, 'GET', `/v2/blobs/a/blobs/${digestOf(Buffer.from('nothing'))}`), 404, 'BLOB_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/blobs/a/blobs/sha256:1234'), 400, 'DIGEST_INVALID');
    assertError(await call(registry.url, 'GET', `/v2/blobs/a/blobs/md5:${'a'.repeat(32)}`), 400, 'DIGEST_INVALID');
  });

  const ranges: [string, number, string, [number, number]][] = [
    ['bytes=0-9', 206, 'bytes 0-9/100', [0, 10]],
    ['bytes=90-', 206, 'bytes 90-99/100', [90, 100]],
    ['bytes=-5', 206, 'bytes 95-99/100', [95, 100]],
    ['bytes=50-500', 206, 'bytes 50-99/100', [50, 100]],
    ['bytes=99-99', 206, 'bytes 99-99/100', [99, 100]],
  ];
  for (const [range, status, contentRange, [start, end]] of ranges) {
    it(`Range ${range} → ${status} ${contentRange}`, async () => {
      const reply = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`, { headers: { range } });
      assert.equal(reply.status, status);
      assert.equal(reply.headers.get('content-range'), contentRange);
      assert.equal(reply.headers.get('content-length'), String(end - start));
      assert.deepEqual(reply.body, blob.bytes.subarray(start, end));
    });
  }

  for (const range of ['bytes=100-', 'bytes=100-200', 'bytes=-0']) {
    it(`Range ${range} is unsatisfiable: 416 with Content-Range */100`, async () => {
      const reply = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`, { headers: { range } });
      assertError(reply, 416, 'BLOB_UNKNOWN');
      assert.equal(reply.headers.get('content-range'), 'bytes */100');
    });
  }

  const other = `"${digestOf(Buffer.from('other'))}"`;
  for (const [label, header] of [
    ['its ETag', `"${blob.digest}"`],
    ['a weak ETag (weak comparison)', `W/"${blob.digest}"`],
    ['*', '*'],
    ['a list holding its ETag', `${other}, W/"${blob.digest}" ,"x"`],
  ] as const) {
    for (const method of ['GET', 'HEAD']) {
      it(`${method} with If-None-Match: ${label} → 304 with ETag, digest and no body; Range does not matter`, async () => {
        for (const headers of [{ 'if-none-match': header }, { 'if-none-match': header, range: 'bytes=0-9' }]) {
          const reply = await call(registry.url, method, `/v2/blobs/a/blobs/${blob.digest}`, { headers });
          assert.equal(reply.status, 304, reply.text);
          assert.equal(reply.body.length, 0);
          assert.equal(reply.headers.get('etag'), `"${blob.digest}"`);
          assert.equal(reply.headers.get('docker-content-digest'), blob.digest);
          assert.equal(reply.headers.get('cache-control'), 'max-age=31536000, immutable');
          assert.equal(reply.headers.get('content-range'), null);
        }
      });
    }
  }

  it('If-None-Match naming other tags serves the blob, ranges included', async () => {
    const whole = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`, { headers: { 'if-none-match': `${other}, W/"nope"` } });
    assert.equal(whole.status, 200);
    assert.deepEqual(whole.body, blob.bytes);
    const part = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`, { headers: { 'if-none-match': other, range: 'bytes=0-9' } });
    assert.equal(part.status, 206);
    assert.deepEqual(part.body, blob.bytes.subarray(0, 10));
    // `*` on a blob this repository does not hold is no match: 404 as always.
    assertError(await call(registry.url, 'GET', `/v2/blobs/other/blobs/${blob.digest}`, { headers: { 'if-none-match': '*' } }), 404, 'BLOB_UNKNOWN');
  });

  for (const range of ['bytes=0-1,5-6', 'items=0-5', 'bytes=9-2']) {
    it(`Range ${range} is ignored: the whole blob`, async () => {
      const reply = await call(registry.url, 'GET', `/v2/blobs/a/blobs/${blob.digest}`, { headers: { range } });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, blob.bytes);
    });
  }
});

describe('DELETE /v2/<name>/blobs/<digest>', () => {
  it('unlinks the blob from one repository and leaves the others', async () => {
    const shared = blobOf(randomBytes(64));
    await pushBlob(registry.url, 'del/one', shared);
    await pushBlob(registry.url, 'del/two', shared);
    const reply = await call(registry.url, 'DELETE', `/v2/del/one/blobs/${shared.digest}`);
    assert.equal(reply.status, 202);
    assertError(await call(registry.url, 'GET', `/v2/del/one/blobs/${shared.digest}`), 404, 'BLOB_UNKNOWN');
    assert.equal((await call(registry.url, 'GET', `/v2/del/two/blobs/${shared.digest}`)).status, 200);
    assertError(await call(registry.url, 'DELETE', `/v2/del/one/blobs/${shared.digest}`), 404, 'BLOB_UNKNOWN');
  });

  it('is refused with 405 UNSUPPORTED when deletes are disabled', async () => {
    const readOnly = await startTestRegistry({ 'registry.deletes': false });
    try {
      const kept = blobOf(randomBytes(10));
      await pushBlob(readOnly.url, 'keep/it', kept);
      assertError(await call(readOnly.url, 'DELETE', `/v2/keep/it/blobs/${kept.digest}`), 405, 'UNSUPPORTED');
      assert.equal((await call(readOnly.url, 'GET', `/v2/keep/it/blobs/${kept.digest}`)).status, 200);
    } finally {
      await readOnly.close();
    }
  });
});

describe('large blobs', () => {
  const large = blobOf(randomBytes(3 * 1024 * 1024 + 12345));
  before(() => pushBlob(registry.url, 'blobs/large', large));

  it('sends every byte of a blob larger than the send buffers, whole and in ranges', async () => {
    const whole = await call(registry.url, 'GET', `/v2/blobs/large/blobs/${large.digest}`);
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(large.bytes));
    const start = 1024 * 1024 - 7;
    const end = 2 * 1024 * 1024 + 9;
    const part = await call(registry.url, 'GET', `/v2/blobs/large/blobs/${large.digest}`, { headers: { range: `bytes=${start}-${end}` } });
    assert.equal(part.status, 206);
    assert.ok(part.body.equals(large.bytes.subarray(start, end + 1)));
  });

  it('keeps serving after clients hang up in the middle of a download', async () => {
    const { request } = await import('node:http');
    const { hostname, port } = new URL(registry.url);
    for (let attempt = 0; attempt < 5; attempt++) {
      await new Promise<void>((resolve, reject) => {
        const outgoing = request({ host: hostname, port, path: `/v2/blobs/large/blobs/${large.digest}` }, (response) => {
          response.once('data', () => {
            response.destroy();
            resolve();
          });
        });
        outgoing.on('error', reject);
        outgoing.end();
      });
    }
    const after = await call(registry.url, 'GET', `/v2/blobs/large/blobs/${large.digest}`);
    assert.ok(after.body.equals(large.bytes));
    // Every blob file opened for those downloads is closed again.
    const { readdir, readlink } = await import('node:fs/promises');
    const openBlobFiles = async () => {
      const targets = await Promise.all((await readdir('/proc/self/fd')).map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => '')));
      return targets.filter((target) => target.startsWith(`${registry.dataDir}/blobs/`)).length;
    };
    await eventually(async () => assert.equal(await openBlobFiles(), 0));
  });
});
