import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../src/blobs/s3/s3-blob-store.ts';
import { leaseTiming, MultipartLeases } from '../../src/io/s3/multipart-leases.ts';
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

    it('never aborts an upload whose lease and start fall between the sweep listings', async () => {
      // A live upload as a commit makes one: its lease first (the real MultipartLeases), then the upload.
      const client = new S3Client({ region: rgw.region, endpoint: rgw.endpoint, forcePathStyle: true, credentials: { ...rgw.credentials } });
      const leases = new MultipartLeases(client, rgw.bucket, 'many/multipart-leases/', leaseTiming(0));
      const key = `many/blobs/sha256/straddle-${randomUUID()}`;
      let release: (() => Promise<void>) | undefined;
      let uploadId: string | undefined;
      try {
        // Warm: the first calls of a new client, and RGW's first upload under a key, take seconds here.
        await (await leases.hold(`${key}-warm`))();
        const warm = await client.send(new CreateMultipartUploadCommand({ Bucket: rgw.bucket, Key: `${key}-warm` }));
        await client.send(new AbortMultipartUploadCommand({ Bucket: rgw.bucket, Key: `${key}-warm`, UploadId: warm.UploadId }));
        // The sweeping replica is two seconds away from the store each way: its first listing
        // reaches the store after 2 s, its second after 6 s, and an abort would after 10 s.
        // The lease and the upload come at 2.5 s, between the two listings.
        proxy.setDelay(2000);
        const sweeping = store.sweepMultipartUploads(new Date(Date.now() + 3_600_000));
        await new Promise((resolve) => setTimeout(resolve, 2500));
        release = await leases.hold(key);
        uploadId = (await client.send(new CreateMultipartUploadCommand({ Bucket: rgw.bucket, Key: key }))).UploadId;
        await sweeping;
        const left = await client.send(new ListMultipartUploadsCommand({ Bucket: rgw.bucket, Prefix: 'many/' }));
        assert.ok(
          (left.Uploads ?? []).some((upload) => upload.UploadId === uploadId),
          'the live upload is still there',
        );
      } finally {
        proxy.setDelay(0);
        if (uploadId !== undefined) await client.send(new AbortMultipartUploadCommand({ Bucket: rgw.bucket, Key: key, UploadId: uploadId })).catch(() => undefined);
        await release?.();
        client.destroy();
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
