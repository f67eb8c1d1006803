import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../src/blobs/s3/s3-blob-store.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { rgwMissing, startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { s3Options } from '../helpers/s3.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { assertSameBytes, readAll, streamOf } from '../helpers/stores.ts';
import { runBlobStoreContract } from './contract.ts';

const skip = rgwMissing();
const mib = 1024 * 1024;
/** Added to every packet each way by the proxy: a round trip of at least 50 ms, as to a remote store. */
const delayMs = 25;
const chunks = 1100;

/** The S3 driver on a real S3 implementation, with UploadPartCopy, aborts and the 5 MiB part minimum. */
describe('S3 BlobStore on Ceph RADOS Gateway', { skip }, () => {
  let rgw: TestRgw;
  before(async () => {
    rgw = await startTestRgw();
    console.log(`# RGW started in ${rgw.startupMs} ms`);
  });
  after(() => rgw?.close());

  runBlobStoreContract('s3 on RGW', async () => ({ store: await S3BlobStore.open(s3Options(rgw, 'contract')), close: async () => undefined }));

  describe('a commit of 1,100 chunks of 1 KiB, 50 ms away from the store', () => {
    let proxy: TcpProxy;
    let store: S3BlobStore;
    let replica: S3BlobStore;
    before(async () => {
      proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(rgw.endpoint).port) });
      store = await S3BlobStore.open({ ...s3Options(rgw, 'many'), endpoint: `http://${proxy.host}:${proxy.port}` });
      replica = await S3BlobStore.open(s3Options(rgw, 'many'));
    });
    after(async () => {
      await store?.close();
      await replica?.close();
      await proxy?.close();
    });

    /** An upload of 1,100 × 1 KiB, appended straight to the store. */
    async function manySmallChunks(): Promise<{ id: string; bytes: Buffer }> {
      const id = randomUUID();
      const parts = Array.from({ length: chunks }, () => randomBytes(1024));
      await replica.uploads.create(id);
      let size = 0;
      for (const chunk of parts) size = await replica.uploads.append(id, size, streamOf(chunk));
      return { id, bytes: Buffer.concat(parts) };
    }

    it('does not take one round trip per chunk', async () => {
      const { id, bytes } = await manySmallChunks();
      proxy.setDelay(delayMs);
      const started = Date.now();
      await store.uploads.commit(id, digestOf(bytes), bytes.length);
      const took = Date.now() - started;
      console.log(`# commit of 1,100 x 1 KiB with ${2 * delayMs} ms round trips took ${took} ms`);
      assertSameBytes(await readAll(await store.open(digestOf(bytes))), bytes);
      // One GET after another cannot take less than 1,100 round trips (55 s), however fast the machine;
      // reading ahead is bounded by the gateway's throughput instead (7 to 15 s on two busy cores).
      const sequentialFloor = chunks * 2 * delayMs;
      assert.ok(took < sequentialFloor / 2, `commit took ${took} ms; one round trip per chunk takes at least ${sequentialFloor} ms`);
    });

    it('is not aborted by a multipart sweep on another replica, however short the expiry', async () => {
      const { id, bytes } = await manySmallChunks();
      // An upload nobody owns any more (its process died): the sweep must still abort that one.
      const client = new S3Client({ region: rgw.region, endpoint: rgw.endpoint, forcePathStyle: true, credentials: { ...rgw.credentials } });
      const orphanKey = 'many/uploads/orphan/0000000000000000.00';
      const orphan = await client.send(new CreateMultipartUploadCommand({ Bucket: rgw.bucket, Key: orphanKey }));
      proxy.setDelay(delayMs);
      const committing = store.uploads.commit(id, digestOf(bytes), bytes.length);
      let sweeps = 0;
      let aborted = 0;
      let done = false;
      void committing.finally(() => (done = true)).catch(() => undefined);
      while (!done) {
        // A cutoff in the future: every multipart upload counts as expired.
        aborted += await replica.sweepMultipartUploads(new Date(Date.now() + 3_600_000));
        sweeps++;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await committing;
      assert.ok(sweeps >= 3, `${sweeps} sweeps ran during the commit`);
      assert.equal(aborted, 1, 'only the orphan was aborted');
      const left = await client.send(new ListMultipartUploadsCommand({ Bucket: rgw.bucket, Prefix: 'many/' }));
      assert.ok(!(left.Uploads ?? []).some((upload) => upload.UploadId === orphan.UploadId), 'the orphan is gone');
      client.destroy();
      assertSameBytes(await readAll(await replica.open(digestOf(bytes))), bytes);
    });

    it('is not aborted by a sweep whose listings straddle the start of its upload', async () => {
      const { id, bytes } = await manySmallChunks();
      // The sweeping replica is half a second away from the store each way; the committing one 25 ms.
      const near = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(rgw.endpoint).port) });
      const owner = await S3BlobStore.open({ ...s3Options(rgw, 'many'), endpoint: `http://${near.host}:${near.port}` });
      try {
        proxy.setDelay(500);
        near.setDelay(delayMs);
        const sweeping = store.sweepMultipartUploads(new Date(Date.now() + 3_600_000));
        // The sweep's first listing reaches the store after 0.5 s, its second one after 1.5 s, and
        // an abort would after 2.5 s: the upload starts between the listings, and its commit
        // (about 5 s of round trips) is still running when an abort could come.
        await new Promise((resolve) => setTimeout(resolve, 700));
        const committing = owner.uploads.commit(id, digestOf(bytes), bytes.length);
        const [swept] = await Promise.allSettled([sweeping, committing]);
        assert.equal(swept.status, 'fulfilled');
        await committing;
        assertSameBytes(await readAll(await replica.open(digestOf(bytes))), bytes);
      } finally {
        proxy.setDelay(0);
        await owner.close();
        await near.close();
      }
    });
  });

  it('copies chunks of 5 MiB and more inside the store, around small ones', async () => {
    const store = await S3BlobStore.open(s3Options(rgw, 'copy'));
    try {
      const id = randomUUID();
      const chunks = [randomBytes(100), randomBytes(5 * mib), randomBytes(3), randomBytes(6 * mib + 7), randomBytes(10)];
      await store.uploads.create(id);
      let size = 0;
      for (const chunk of chunks) size = await store.uploads.append(id, size, streamOf(chunk));
      const bytes = Buffer.concat(chunks);
      await store.uploads.commit(id, digestOf(bytes), size);
      assertSameBytes(await readAll(await store.open(digestOf(bytes))), bytes);
    } finally {
      await store.close();
    }
  });
});
