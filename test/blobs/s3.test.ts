import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { Readable } from 'node:stream';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../src/blobs/s3/s3-blob-store.ts';
import { createS3Client } from '../../src/io/s3/s3-client.ts';
import { s3Options, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { assertSameBytes, readAll, registryError, streamOf } from '../helpers/stores.ts';
import { runBlobStoreContract } from './contract.ts';

describe('S3 BlobStore', () => {
  let s3: TestS3;
  before(async () => {
    s3 = await startTestS3();
  });
  after(() => s3?.close());

  runBlobStoreContract('s3', async () => ({ store: await S3BlobStore.open(s3Options(s3, 'contract')), close: async () => undefined }));
});

describe('S3 BlobStore across replicas', () => {
  let s3: TestS3;
  let replicaA: S3BlobStore;
  let replicaB: S3BlobStore;
  before(async () => {
    s3 = await startTestS3();
    replicaA = await S3BlobStore.open(s3Options(s3, 'shared'));
    replicaB = await S3BlobStore.open(s3Options(s3, 'shared'));
  });
  after(async () => {
    await replicaA?.close();
    await replicaB?.close();
    await s3?.close();
  });

  it('continues on one replica an upload started on another, with no state in either', async () => {
    const id = randomUUID();
    const chunks = [randomBytes(1000), randomBytes(6 * 1024 * 1024), randomBytes(10)];
    await replicaA.uploads.create(id);
    let size = await replicaA.uploads.append(id, 0, streamOf(chunks[0] as Buffer));
    size = await replicaB.uploads.append(id, size, streamOf(chunks[1] as Buffer));
    size = await replicaA.uploads.append(id, size, streamOf(chunks[2] as Buffer));
    const bytes = Buffer.concat(chunks);
    assertSameBytes(await readAll(await replicaB.uploads.read(id, undefined, size)), bytes);
    await replicaB.uploads.commit(id, digestOf(bytes), size);
    assertSameBytes(await readAll(await replicaA.open(digestOf(bytes))), bytes);
  });

  it('assembles chunks of 5 MiB and more, streaming the parts when the store cannot copy them', async () => {
    // s3rver answers UploadPartCopy with NotImplemented: this covers the fallback.
    const id = randomUUID();
    const chunks = [randomBytes(5 * 1024 * 1024), randomBytes(5 * 1024 * 1024 + 1), randomBytes(7)];
    await replicaA.uploads.create(id);
    let size = 0;
    for (const chunk of chunks) size = await replicaA.uploads.append(id, size, streamOf(chunk));
    const bytes = Buffer.concat(chunks);
    await replicaB.uploads.commit(id, digestOf(bytes), size);
    assertSameBytes(await readAll(await replicaA.open(digestOf(bytes))), bytes);
    assert.equal(await replicaA.stat(digestOf(bytes)), bytes.length);
  });

  it('commits the bytes of the append the MetaStore recorded when two raced at one offset', async () => {
    const id = randomUUID();
    await replicaA.uploads.create(id);
    const [winner, loser] = [randomBytes(300), randomBytes(200)];
    const [winnerSize] = await Promise.all([replicaA.uploads.append(id, 0, streamOf(winner)), replicaB.uploads.append(id, 0, streamOf(loser))]);
    await replicaB.uploads.commit(id, digestOf(winner), winnerSize);
    assertSameBytes(await readAll(await replicaA.open(digestOf(winner))), winner);
  });

  it('refuses to commit when racing appends left two contents of the same length', async () => {
    const id = randomUUID();
    await replicaA.uploads.create(id);
    const [one, two] = [randomBytes(256), randomBytes(256)];
    await Promise.all([replicaA.uploads.append(id, 0, streamOf(one)), replicaB.uploads.append(id, 0, streamOf(two))]);
    await assert.rejects(replicaB.uploads.commit(id, digestOf(one), 256), registryError('BLOB_UPLOAD_INVALID'));
    assert.equal(await replicaA.stat(digestOf(one)), undefined);
    assert.equal(await replicaA.stat(digestOf(two)), undefined);
  });

  it('accepts the same chunk stored twice by a client retrying through another replica', async () => {
    const id = randomUUID();
    await replicaA.uploads.create(id);
    const chunk = randomBytes(4096);
    await Promise.all([replicaA.uploads.append(id, 0, streamOf(chunk)), replicaB.uploads.append(id, 0, streamOf(chunk))]);
    await replicaB.uploads.commit(id, digestOf(chunk), chunk.length);
    assertSameBytes(await readAll(await replicaA.open(digestOf(chunk))), chunk);
  });

  it('keeps stores with different prefixes apart', async () => {
    const other = await S3BlobStore.open(s3Options(s3, 'elsewhere/'));
    try {
      const bytes = randomBytes(50);
      const id = randomUUID();
      await other.uploads.create(id);
      await other.uploads.append(id, 0, streamOf(bytes));
      await other.uploads.commit(id, digestOf(bytes), bytes.length);
      assert.equal(await other.stat(digestOf(bytes)), 50);
      assert.equal(await replicaA.stat(digestOf(bytes)), undefined);
      const listed: string[] = [];
      for await (const item of replicaA.list()) listed.push(item.key);
      assert.ok(!listed.includes(digestOf(bytes)));
    } finally {
      await other.close();
    }
  });

  it('says clearly when the bucket is missing', async () => {
    await assert.rejects(S3BlobStore.open({ ...s3Options(s3, ''), bucket: 'no-such-bucket' }), /cannot use S3 bucket "no-such-bucket": no such bucket/);
  });
});

describe("the AWS SDK's own messages", () => {
  let s3: TestS3;
  before(async () => {
    s3 = await startTestS3();
  });
  after(() => s3?.close());

  it('go through the logger, never straight to stderr', async (t) => {
    const logged: string[] = [];
    const logger = {
      debug: (_object: object, message?: string) => logged.push(message ?? ''),
      info: () => undefined,
      warn: () => undefined,
      error: () => undefined,
      child: () => logger,
    };
    const console = t.mock.method(globalThis.console, 'warn', () => undefined);
    const client = createS3Client({ ...s3Options(s3, 'sdk'), logger });
    try {
      // A streaming body cut short (its client went away): the SDK cannot retry it, and says so.
      let sent = false;
      const body = new Readable({
        read() {
          if (!sent) this.push(Buffer.alloc(10));
          sent = true;
        },
      });
      const abort = new AbortController();
      setTimeout(() => abort.abort(new Error('the client went away')), 200);
      await assert.rejects(client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'sdk/broken', Body: body, ContentLength: 100 }), { abortSignal: abort.signal }));
      assert.ok(
        logged.some((message) => /non-retryable streaming request/.test(message)),
        JSON.stringify(logged),
      );
      assert.equal(console.mock.callCount(), 0);
    } finally {
      client.destroy();
    }
  });
});
