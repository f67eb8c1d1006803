import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { S3BlobStore } from '../../src/blobs/s3/s3-blob-store.ts';
import { isRegistryError } from '../../src/errors/registry-error.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { s3Options, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const digest = digestOf(Buffer.from('x'));

/** 503 "blob store unavailable", as the HTTP layer answers it. */
function blobStoreUnavailable(error: unknown): boolean {
  assert.ok(isRegistryError(error), String(error));
  assert.equal(error.status, 503);
  assert.equal(error.code, 'TOOMANYREQUESTS');
  assert.deepEqual(error.detail, { unavailable: 'blobs' });
  assert.ok(Number(error.headers['retry-after']) > 0);
  return true;
}

describe('S3 BlobStore when the store fails', () => {
  let s3: TestS3;
  let proxy: TcpProxy;
  let store: S3BlobStore;
  before(async () => {
    s3 = await startTestS3();
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    store = await S3BlobStore.open({ ...s3Options(s3, 'outage'), endpoint: `http://${proxy.host}:${proxy.port}`, requestTimeout: 500 });
  });
  after(async () => {
    await store?.close();
    await proxy?.close();
    await s3?.close();
  });

  it('gives up on a store that accepts connections but never answers after requestTimeout, and works again after', async () => {
    proxy.setMode('blackhole');
    const started = Date.now();
    await assert.rejects(store.stat(digest), blobStoreUnavailable);
    await assert.rejects(store.ping(), blobStoreUnavailable);
    assert.ok(Date.now() - started < 3000, `${Date.now() - started} ms`);
    proxy.setMode('pass');
    assert.equal(await store.stat(digest), undefined);
    await store.ping();
  });

  it('reports a refused connection as unavailable, not as an internal error', async () => {
    const doomed = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(s3.endpoint).port) });
    const gone = await S3BlobStore.open({ ...s3Options(s3, 'outage'), endpoint: `http://${doomed.host}:${doomed.port}`, requestTimeout: 500 });
    try {
      // Nothing listens on the port any more: the store went away.
      await doomed.close();
      await assert.rejects(gone.stat(digest), blobStoreUnavailable);
    } finally {
      await gone.close();
    }
  });
});
