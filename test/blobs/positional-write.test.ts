import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.ts';
import { writeAt } from '../../src/blobs/fs/positional-write.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Chunks of socket-read size, as a request body arrives. */
function chunksOf(bytes: Buffer, size = 64 * 1024): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += size) chunks.push(bytes.subarray(at, at + size));
  return chunks;
}

describe('positional writes of upload bodies', () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('berth-positional');
  });
  after(() => dir.remove());

  const withFile = async (name: string, initial: Buffer, work: (fd: number, path: string) => Promise<void>) => {
    const path = join(dir.path, name);
    writeFileSync(path, initial);
    const fd = openSync(path, 'r+');
    try {
      await work(fd, path);
    } finally {
      closeSync(fd);
    }
  };

  it('writes a body of many chunks after what the file holds, in order', async () => {
    const head = randomBytes(1000);
    const body = randomBytes(20 * 1024 * 1024 + 123);
    await withFile('many', head, async (fd, path) => {
      assert.equal(await writeAt(fd, head.length, Readable.from(chunksOf(body))), body.length);
      assert.ok(readFileSync(path).equals(Buffer.concat([head, body])));
    });
  });

  it('writes nothing for an empty body', async () => {
    await withFile('empty', Buffer.alloc(0), async (fd, path) => {
      assert.equal(await writeAt(fd, 0, Readable.from([])), 0);
      assert.equal(statSync(path).size, 0);
    });
  });

  it('rejects when the body fails, only after the write in flight has landed, so that cutting back sticks', async () => {
    // The error comes right after an 8 MiB write has started.
    const body = randomBytes(9 * 1024 * 1024 + 64 * 1024);
    async function* failing() {
      yield* chunksOf(body);
      throw new Error('client went away');
    }
    await withFile('failing', Buffer.alloc(0), async (fd, path) => {
      await assert.rejects(writeAt(fd, 0, Readable.from(failing())), /client went away/);
      // What the caller does next: cut back. No write may land afterwards.
      truncateSync(path, 0);
      await sleep(50);
      assert.equal(statSync(path).size, 0);
    });
  });

  it('stops on abort and stops reading the body', async () => {
    let pulled = 0;
    const endless = new Readable({
      read() {
        pulled += 1;
        this.push(randomBytes(64 * 1024));
      },
    });
    const controller = new AbortController();
    await withFile('aborted', Buffer.alloc(0), async (fd) => {
      const writing = writeAt(fd, 0, endless, controller.signal);
      await sleep(30);
      controller.abort();
      await assert.rejects(writing);
      const seen = pulled;
      await sleep(30);
      assert.equal(pulled, seen);
      assert.ok(endless.destroyed);
    });
  });

  it('reads at most a bounded amount ahead of the disk: a body is never held whole in memory', async () => {
    // A source that counts what was taken from it; the writer gets the bytes only as fast as it asks.
    let taken = 0;
    let produced = 0;
    const total = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 7);
    let maxAhead = 0;
    const source = new Readable({
      highWaterMark: 64 * 1024,
      read() {
        if (produced >= total) {
          this.push(null);
          return;
        }
        produced += chunk.length;
        this.push(chunk);
      },
    });
    await withFile('bounded', Buffer.alloc(0), async (fd, path) => {
      const original = source.read.bind(source);
      source.read = (size?: number) => {
        const value = original(size) as Buffer | null;
        if (value !== null) taken += value.length;
        maxAhead = Math.max(maxAhead, taken - statSync(path).size);
        return value;
      };
      assert.equal(await writeAt(fd, 0, source), total);
    });
    // One write in flight (at most 8 MiB) and the next queue (at most 8 MiB plus a chunk).
    assert.ok(maxAhead > 0);
    assert.ok(maxAhead <= 17 * 1024 * 1024, `read ${maxAhead} bytes ahead of the file`);
  });
});

describe('the fs upload area', () => {
  it('commits into a blob directory removed behind its back (made again)', async () => {
    const root = await tempDir('berth-fs-dirs');
    try {
      const store = await FsBlobStore.open(root.path);
      const bytes = randomBytes(5000);
      const digest = digestOf(bytes);
      const push = async (id: string) => {
        await store.uploads.create(id);
        await store.uploads.append(id, 0, Readable.from([bytes]));
        await store.uploads.commit(id, digest, bytes.length);
      };
      await push('first');
      await store.delete(digest);
      await rm(join(root.path, 'blobs', 'sha256'), { recursive: true });
      await push('second');
      assert.equal(await store.stat(digest), bytes.length);
    } finally {
      await root.remove();
    }
  });
});
