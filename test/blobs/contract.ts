import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { BlobStore } from '../../src/blobs/blob-store.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { assertSameBytes, failingStreamOf, readAll, registryError, streamOf, type OpenedStore, type OpenStore } from '../helpers/stores.ts';

const mib = 1024 * 1024;

/**
 * The behaviour every BlobStore promises (src/blobs/blob-store.ts). Each
 * driver's test file calls this with a way to open an empty store.
 */
export function runBlobStoreContract(label: string, openStore: OpenStore<BlobStore>): void {
  describe(`BlobStore contract: ${label}`, () => {
    let opened: OpenedStore<BlobStore>;
    let store: BlobStore;
    before(async () => {
      opened = await openStore();
      store = opened.store;
    });
    after(async () => {
      await store.close?.();
      await opened.close();
    });

    /** Uploads `chunks` as one upload and commits it; returns the digest and bytes. */
    async function storeBlob(chunks: Buffer[]): Promise<{ digest: Digest; bytes: Buffer }> {
      const bytes = Buffer.concat(chunks);
      const digest = digestOf(bytes);
      const id = randomUUID();
      await store.uploads.create(id);
      let offset = 0;
      for (const chunk of chunks) offset = await store.uploads.append(id, offset, streamOf(chunk));
      assert.equal(offset, bytes.length);
      await store.uploads.commit(id, digest, offset);
      return { digest, bytes };
    }

    it('reports a missing blob as absent, BLOB_UNKNOWN on open, and deletes it quietly', async () => {
      const digest = digestOf(randomBytes(16));
      assert.equal(await store.stat(digest), undefined);
      await assert.rejects(store.open(digest), registryError('BLOB_UNKNOWN'));
      await store.delete(digest);
    });

    it('advertises a positive chunk minimum', () => {
      assert.ok(Number.isInteger(store.chunkMinLength) && store.chunkMinLength >= 1);
    });

    it('assembles appended chunks into a blob and removes the upload', async () => {
      const chunks = [randomBytes(1000), randomBytes(1), randomBytes(70_000)];
      const id = randomUUID();
      await store.uploads.create(id);
      let offset = 0;
      for (const chunk of chunks) {
        const next = await store.uploads.append(id, offset, streamOf(chunk));
        assert.equal(next, offset + chunk.length);
        offset = next;
      }
      const bytes = Buffer.concat(chunks);
      assertSameBytes(await readAll(await store.uploads.read(id)), bytes);
      const digest = digestOf(bytes);
      await store.uploads.commit(id, digest, bytes.length);
      assert.equal(await store.stat(digest), bytes.length);
      assertSameBytes(await readAll(await store.open(digest)), bytes);
      await assert.rejects(store.uploads.append(id, offset, streamOf(Buffer.from('x'))), registryError('BLOB_UPLOAD_UNKNOWN'));
      assert.ok(!(await uploadIds(store)).includes(id));
    });

    it('stores a blob made of chunks larger and smaller than any part size', async () => {
      const { digest, bytes } = await storeBlob([randomBytes(3), randomBytes(6 * mib + 7), randomBytes(1024), randomBytes(5 * mib), randomBytes(1)]);
      assert.equal(await store.stat(digest), bytes.length);
      assert.equal(digestOf(await readAll(await store.open(digest))), digest);
    });

    it('stores the empty blob', async () => {
      const { digest } = await storeBlob([]);
      assert.equal(await store.stat(digest), 0);
      assert.equal((await readAll(await store.open(digest))).length, 0);
    });

    it('serves inclusive byte ranges', async () => {
      const { digest, bytes } = await storeBlob([randomBytes(10_000)]);
      for (const [start, end] of [
        [0, 0],
        [0, 9_999],
        [9_999, 9_999],
        [1234, 5678],
      ] as const) {
        assertSameBytes(await readAll(await store.open(digest, { start, end })), bytes.subarray(start, end + 1), `bytes ${start}-${end}`);
      }
    });

    it('cuts an upload back to where it was when the chunk stream fails', async () => {
      const first = randomBytes(5000);
      const id = randomUUID();
      await store.uploads.create(id);
      const offset = await store.uploads.append(id, 0, streamOf(first));
      await assert.rejects(store.uploads.append(id, offset, failingStreamOf(randomBytes(3000))), /client went away/);
      assertSameBytes(await readAll(await store.uploads.read(id)), first);
      const second = randomBytes(700);
      assert.equal(await store.uploads.append(id, offset, streamOf(second)), offset + second.length);
      const bytes = Buffer.concat([first, second]);
      await store.uploads.commit(id, digestOf(bytes), bytes.length);
      assertSameBytes(await readAll(await store.open(digestOf(bytes))), bytes);
    });

    it('leaves the upload unchanged when an append is aborted', async () => {
      const id = randomUUID();
      await store.uploads.create(id);
      const first = randomBytes(100);
      await store.uploads.append(id, 0, streamOf(first));
      const controller = new AbortController();
      const never = failingStreamOf(randomBytes(10), 'aborted');
      controller.abort();
      await assert.rejects(store.uploads.append(id, first.length, never, controller.signal));
      assertSameBytes(await readAll(await store.uploads.read(id)), first);
      await store.uploads.remove(id);
    });

    it('refuses an append past the end of the upload', async () => {
      const id = randomUUID();
      await store.uploads.create(id);
      await store.uploads.append(id, 0, streamOf(randomBytes(10)));
      await assert.rejects(store.uploads.append(id, 20, streamOf(randomBytes(10))), registryError('BLOB_UPLOAD_INVALID'));
      await store.uploads.remove(id);
    });

    it('reads and commits exactly the recorded size when stray bytes follow it', async () => {
      const recorded = randomBytes(2000);
      const id = randomUUID();
      await store.uploads.create(id);
      const size = await store.uploads.append(id, 0, streamOf(recorded));
      // An append whose result the MetaStore never recorded (its process died).
      await store.uploads.append(id, size, streamOf(randomBytes(500)));
      assertSameBytes(await readAll(await store.uploads.read(id, undefined, size)), recorded);
      await assert.rejects(store.uploads.read(id, undefined, size + 501), registryError('BLOB_UPLOAD_INVALID'));
      await store.uploads.commit(id, digestOf(recorded), size);
      assertSameBytes(await readAll(await store.open(digestOf(recorded))), recorded);
    });

    it('answers BLOB_UPLOAD_UNKNOWN for an upload that does not exist', async () => {
      const id = randomUUID();
      await assert.rejects(store.uploads.append(id, 0, streamOf(Buffer.from('x'))), registryError('BLOB_UPLOAD_UNKNOWN'));
      await assert.rejects(store.uploads.read(id), registryError('BLOB_UPLOAD_UNKNOWN'));
      await assert.rejects(store.uploads.commit(id, digestOf(Buffer.from('x'))), registryError('BLOB_UPLOAD_UNKNOWN'));
      await assert.rejects(store.uploads.append('../escape', 0, streamOf(Buffer.from('x'))), registryError('BLOB_UPLOAD_UNKNOWN'));
      await store.uploads.remove(id);
    });

    it('keeps one copy when the same blob is committed twice, even at once', async () => {
      const bytes = randomBytes(40_000);
      const digest = digestOf(bytes);
      const ids = [randomUUID(), randomUUID(), randomUUID()];
      for (const id of ids) {
        await store.uploads.create(id);
        await store.uploads.append(id, 0, streamOf(bytes));
      }
      await Promise.all(ids.slice(0, 2).map((id) => store.uploads.commit(id, digest, bytes.length)));
      await store.uploads.commit(ids[2] as string, digest, bytes.length);
      assertSameBytes(await readAll(await store.open(digest)), bytes);
      const remaining = await uploadIds(store);
      for (const id of ids) assert.ok(!remaining.includes(id), 'committed uploads are gone');
      if (store.list !== undefined) {
        assert.equal((await storedDigests(store)).filter((stored) => stored === digest).length, 1);
      }
    });

    it('lists uploads with their last change, and forgets removed ones', async () => {
      const id = randomUUID();
      const before = Date.now() - 2000;
      await store.uploads.create(id);
      const listed = (await toArray(store.uploads.list())).find((item) => item.key === id);
      assert.ok(listed !== undefined, 'a created upload is listed');
      assert.ok(listed.modifiedAt instanceof Date && listed.modifiedAt.getTime() >= before);
      await store.uploads.remove(id);
      await store.uploads.remove(id);
      assert.ok(!(await uploadIds(store)).includes(id));
      await assert.rejects(store.uploads.read(id), registryError('BLOB_UPLOAD_UNKNOWN'));
    });

    it('deletes a blob', async () => {
      const { digest } = await storeBlob([randomBytes(64)]);
      await store.delete(digest);
      assert.equal(await store.stat(digest), undefined);
      await assert.rejects(store.open(digest), registryError('BLOB_UNKNOWN'));
      if (store.list !== undefined) assert.ok(!(await storedDigests(store)).includes(digest));
    });

    it('lists stored blobs for collectors', async (t) => {
      if (store.list === undefined) return t.skip('the driver does not list blobs');
      const one = await storeBlob([randomBytes(10)]);
      const two = await storeBlob([randomBytes(20)]);
      const items = await toArray(store.list());
      for (const { digest } of [one, two]) {
        const item = items.find((entry) => entry.key === digest);
        assert.ok(item !== undefined, `${digest} is listed`);
        assert.ok(item.modifiedAt instanceof Date);
      }
    });

    it('gives a redirect URL that serves the blob', async (t) => {
      if (store.redirectUrl === undefined) return t.skip('the driver does not redirect');
      const { digest, bytes } = await storeBlob([randomBytes(3000)]);
      const url = await store.redirectUrl(digest);
      assert.ok(url !== undefined && /^https?:\/\//.test(url));
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assertSameBytes(Buffer.from(await response.arrayBuffer()), bytes);
    });
  });
}

async function toArray<T>(items: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const item of items) result.push(item);
  return result;
}

async function uploadIds(store: BlobStore): Promise<string[]> {
  return (await toArray(store.uploads.list())).map((item) => item.key);
}

async function storedDigests(store: BlobStore): Promise<Digest[]> {
  return store.list === undefined ? [] : (await toArray(store.list())).map((item) => item.key);
}
