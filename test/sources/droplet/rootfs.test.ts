import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FsBlobStore } from '../../../src/blobs/fs/fs-blob-store.ts';
import { isRegistryError } from '../../../src/errors/registry-error.ts';
import { silentLogger, type Logger } from '../../../src/log.ts';
import { SqliteDropletStore } from '../../../src/meta/sqlite/sqlite-droplet-store.ts';
import { SqliteMetaStore } from '../../../src/meta/sqlite/sqlite-meta-store.ts';
import type { Digest } from '../../../src/oci/digest.ts';
import type { RepositoryName } from '../../../src/oci/names.ts';
import { RootfsBase, storeRootfs } from '../../../src/sources/droplet/rootfs.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { buildRootfs } from './fixtures.ts';

let temp: { path: string; remove(): Promise<void> };
let store: FsBlobStore;

before(async () => {
  temp = await tempDir('berth-rootfs');
  store = await FsBlobStore.open(join(temp.path, 'store'));
});
after(() => temp.remove());

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

async function stored(digest: Digest): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.open(digest)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('a .tar.gz rootfs is stored as it is; its diff_id is hashed from the tar inside', async () => {
  const tar = await buildRootfs('gz');
  const file = join(temp.path, 'rootfs.tar.gz');
  await writeFile(file, gzipSync(tar));
  const layer = await storeRootfs(store, file);
  const bytes = await readFile(file);
  assert.deepEqual(layer, { digest: sha256(bytes), size: bytes.length, diffId: sha256(tar) });
  assert.deepEqual(await stored(layer.digest), bytes);
});

test('a .tar rootfs is stored gzip-compressed', async () => {
  const tar = await buildRootfs('tar');
  const file = join(temp.path, 'rootfs.tar');
  await writeFile(file, tar);
  const layer = await storeRootfs(store, file);
  const bytes = await stored(layer.digest);
  assert.equal(layer.digest, sha256(bytes));
  assert.equal(layer.size, bytes.length);
  assert.equal(layer.diffId, sha256(tar));
  assert.deepEqual(gunzipSync(bytes), tar);
});

test('what is not a tar, or a broken gzip, is refused and nothing is kept', async () => {
  const tar = gzipSync(await buildRootfs('broken'));
  const cases: [string, Buffer, RegExp][] = [
    ['text.tar', Buffer.from('just some text, long enough to fill a block? no'), /is not a tar archive/],
    ['zeros.tar.gz', gzipSync(Buffer.alloc(4096)), /is not a tar archive/],
    ['cut.tar.gz', tar.subarray(0, tar.length >> 1), /is not a gzip-compressed tar/],
  ];
  for (const [name, content, message] of cases) {
    const file = join(temp.path, name);
    await writeFile(file, content);
    await assert.rejects(
      storeRootfs(store, file),
      (error: unknown) => {
        assert.ok(isRegistryError(error), String(error));
        assert.equal(error.code, 'BLOB_UPLOAD_INVALID');
        assert.match(error.message, message);
        return true;
      },
      name,
    );
    for await (const upload of store.uploads.list()) assert.fail(`upload ${upload.key} left behind by ${name}`);
  }
});

test('replicas whose copies of the configured file differ in inode or time import it once each, not over and over', async () => {
  const meta = SqliteMetaStore.open(join(temp.path, 'replicas.db'));
  const droplets = new SqliteDropletStore(meta.database);
  // Two replicas' copies of one rootfs file: same content, another inode and modification time.
  const [fileA, fileB] = [join(temp.path, 'replica-a.tar'), join(temp.path, 'replica-b.tar')];
  const v1 = await buildRootfs('replicas-v1');
  await writeFile(fileA, v1);
  await writeFile(fileB, v1);
  const imports: string[] = [];
  const counting = (replica: string): Logger => ({
    ...silentLogger,
    info(_object, message) {
      if (message?.startsWith('rootfs file is new or replaced') === true) imports.push(replica);
    },
  });
  const replica = (file: string, name: string) =>
    new RootfsBase(
      'cf/',
      droplets,
      store,
      { path: file, checkIntervalMs: 0, retentionMs: 60_000, repository: 'cf/rootfs' as RepositoryName, architecture: 'amd64', importer: 'on-demand' },
      counting(name),
    );
  const [a, b] = [replica(fileA, 'a'), replica(fileB, 'b')];
  try {
    for (let round = 0; round < 3; round += 1) {
      for (const base of [a, b]) {
        await base.current();
        await base.settled();
      }
    }
    assert.deepEqual(imports, ['a', 'b'], 'each replica reads its file once');
    assert.equal((await droplets.rootfs.history('cf/')).length, 1);

    // A real replacement is still noticed, and the other replica's unchanged file does not take it back.
    await writeFile(fileA, await buildRootfs('replicas-v2'));
    await a.current();
    await a.settled();
    const latest = (await a.current()).digest;
    await b.current();
    await b.settled();
    assert.equal((await b.current()).digest, latest);
    assert.deepEqual(imports, ['a', 'b', 'a']);
  } finally {
    await a.close();
    await b.close();
    await meta.close();
  }
});
