import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, open, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { call } from '../helpers/http.ts';
import { blobOf, pushBlob, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { needsRoot } from '../helpers/tools.ts';

/** A small tmpfs of its own; false when this machine cannot mount one (not root, or in a container without the right). */
function mountTmpfs(path: string, size: string): string | false {
  const notRoot = needsRoot('to mount a small tmpfs');
  if (notRoot !== false) return notRoot;
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], { encoding: 'utf8' });
  return mounted.status === 0 ? false : `cannot mount a tmpfs here: ${mounted.stderr.trim()}`;
}

/** Writes a file until the filesystem is full. */
async function fill(path: string): Promise<void> {
  const file = await open(path, 'w');
  try {
    const block = Buffer.alloc(64 * 1024, 1);
    for (;;) await file.write(block);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  } finally {
    await file.close();
  }
}

const temp = await tempDir('berth-disk-full');
const mountPoint = join(temp.path, 'small');
await mkdir(mountPoint);
const cannotMount = mountTmpfs(mountPoint, '6m');

describe('a full disk', { skip: cannotMount }, () => {
  let registry: TestRegistry;
  const stored = blobOf(randomBytes(200_000));
  const filler = join(mountPoint, 'filler');

  before(async () => {
    registry = await startTestRegistry({ 'gc.interval': 0 }, { dataDir: join(mountPoint, 'data'), captureLogs: true });
    await pushBlob(registry.url, 'full/app', stored);
  });
  after(async () => {
    await registry?.close();
    spawnSync('umount', [mountPoint]);
    await temp.remove();
  });

  const storageFullLines = () => registry.logs.filter((line) => typeof line['msg'] === 'string' && line['msg'].startsWith('storage full'));

  it('answers 507 saying the storage is full, logs ENOSPC and the store, counts it, and keeps what is stored', async () => {
    // Small enough to be sent whole before the answer comes: the point is the answer, not a reset.
    const big = randomBytes(512 * 1024);
    await fill(filler);
    // Room for the session's record, not for the blob.
    await truncate(filler, (await stat(filler)).size - 300 * 1024);
    const reply = await call(registry.url, 'POST', `/v2/full/app/blobs/uploads/?digest=${digestOf(big)}`, { body: big }).finally(() => rm(filler));
    assert.equal(reply.status, 507, reply.text);
    const error = reply.json<{ errors: { code: string; message: string }[] }>().errors[0];
    assert.match(error?.message ?? '', /storage is full/);
    assert.doesNotMatch(reply.text, /ENOSPC|\/|data/, 'no internals');
    const line = storageFullLines().at(-1);
    assert.equal(line?.['level'], 50);
    assert.equal(line?.['code'], 'ENOSPC');
    assert.equal(line?.['store'], 'blobs');
    assert.match(String(line?.['where']), /small\/data/);
    assert.equal(line?.['err'], undefined, 'one line, no stack');
    const metrics = await call(registry.url, 'GET', '/metrics');
    assert.match(metrics.text, /^berth_storage_full_total\{store="blobs"\} [1-9]/m);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/full/app/blobs/${stored.digest}`)).body, stored.bytes);
  });

  it('a chunk that does not fit is dropped whole; the session keeps what it had and resumes once there is room', async () => {
    const start = await call(registry.url, 'POST', '/v2/full/chunks/blobs/uploads/');
    const location = start.headers.get('location') as string;
    const first = randomBytes(100_000);
    assert.equal((await call(registry.url, 'PATCH', location, { body: first, headers: { 'content-type': 'application/octet-stream' } })).status, 202);
    await fill(filler);
    const second = randomBytes(300_000);
    const refused = await call(registry.url, 'PATCH', location, { body: second, headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(refused.status, 507, refused.text);
    assert.equal((await call(registry.url, 'GET', location)).headers.get('range'), `0-${first.length - 1}`);
    await rm(filler);
    assert.equal((await call(registry.url, 'PATCH', location, { body: second, headers: { 'content-type': 'application/octet-stream' } })).status, 202);
    const whole = Buffer.concat([first, second]);
    assert.equal((await call(registry.url, 'PUT', `${location}?digest=${digestOf(whole)}`)).status, 201);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/full/chunks/blobs/${digestOf(whole)}`)).body, whole);
  });

  it("a manifest PUT with the metadata database out of room logs SQLite's own error and stores nothing", async () => {
    const image = randomImage({ layers: 1, layerSize: 1000 });
    for (const blob of [image.config, ...image.layers]) await pushBlob(registry.url, 'full/meta', blob);
    const put = (tag: string) => call(registry.url, 'PUT', `/v2/full/meta/manifests/${tag}`, { body: image.manifest.bytes, headers: { 'content-type': image.manifest.mediaType } });
    assert.equal((await put('v1')).status, 201);
    await fill(filler);
    try {
      let reply = await put('v2');
      // The database may still have room in pages it holds; more tags use it up.
      for (let tag = 3; reply.status === 201 && tag < 2000; tag += 1) {
        reply = await call(registry.url, 'PUT', `/v2/full/meta/manifests/v${tag}`, { body: image.manifest.bytes, headers: { 'content-type': image.manifest.mediaType } });
      }
      assert.equal(reply.status, 507, reply.text);
      const line = storageFullLines().at(-1);
      assert.equal(line?.['store'], 'metadata');
      assert.equal(line?.['code'], 'SQLITE_FULL');
      assert.doesNotMatch(JSON.stringify(registry.logs), /cannot rollback/);
    } finally {
      await rm(filler);
    }
    assert.equal((await call(registry.url, 'GET', '/v2/full/meta/manifests/v1', { headers: { accept: image.manifest.mediaType } })).status, 200);
    assert.deepEqual((await call(registry.url, 'GET', `/v2/full/app/blobs/${stored.digest}`)).body, stored.bytes);
  });
});
