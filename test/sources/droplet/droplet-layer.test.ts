import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import { FsBlobStore } from '../../../src/blobs/fs/fs-blob-store.ts';
import { isRegistryError } from '../../../src/errors/registry-error.ts';
import { convertDroplet } from '../../../src/sources/droplet/droplet-layer.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { buildDroplet, entriesOf, tarOf, vcap, type TarEntry } from './fixtures.ts';

let store: FsBlobStore;
let temp: { path: string; remove(): Promise<void> };

before(async () => {
  temp = await tempDir('berth-droplet-layer');
  store = await FsBlobStore.open(temp.path);
});
after(async () => {
  await temp.remove();
});

async function readBlob(digest: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.open(digest as never)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function uploadsLeft(): Promise<number> {
  let count = 0;
  for await (const _ of store.uploads.list()) count += 1;
  return count;
}

describe('droplet → layer conversion', () => {
  test('moves entries under home/vcap/ owned by vcap, keeps modes, rewrites hard links only', async () => {
    const droplet = await buildDroplet({ startCommand: 'bundle exec rackup -p $PORT' });
    const converted = await convertDroplet(store, Readable.from([droplet]), vcap);

    assert.equal(converted.dropletDigest, `sha256:${createHash('sha256').update(droplet).digest('hex')}`);
    assert.equal(converted.dropletSize, droplet.length);
    assert.deepEqual(converted.processTypes, { web: 'bundle exec rackup -p $PORT' });

    const layer = await readBlob(converted.layer.digest);
    assert.equal(converted.layer.size, layer.length);
    assert.equal(converted.layer.digest, `sha256:${createHash('sha256').update(layer).digest('hex')}`);
    assert.equal(converted.layer.diffId, `sha256:${createHash('sha256').update(gunzipSync(layer)).digest('hex')}`);

    const entries = await entriesOf(layer);
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    assert.deepEqual(
      entries.slice(0, 2).map((entry) => [entry.name, entry.uid, entry.mode]),
      [
        ['home/', 0, 0o755],
        ['home/vcap/', 2000, 0o755],
      ],
    );
    for (const entry of entries.slice(1)) {
      assert.ok(entry.name.startsWith('home/vcap/'), entry.name);
      assert.equal(entry.uid, 2000, entry.name);
      assert.equal(entry.gid, 2000, entry.name);
    }
    const cases: [string, Partial<{ type: string; mode: number; linkname: string | null; body: string }>][] = [
      ['home/vcap/app/', { type: 'directory', mode: 0o755 }],
      ['home/vcap/app/start.sh', { type: 'file', mode: 0o750 }],
      ['home/vcap/app/secret.txt', { type: 'file', mode: 0o600, body: 'not for others\n' }],
      ['home/vcap/app/data/original.txt', { type: 'file', mode: 0o640 }],
      ['home/vcap/app/data/hard-link.txt', { type: 'link', linkname: 'home/vcap/app/data/original.txt' }],
      ['home/vcap/app/current', { type: 'symlink', linkname: '../deps/0' }],
      ['home/vcap/deps/0/bin/tool', { type: 'file', mode: 0o755 }],
      ['home/vcap/staging_info.yml', { type: 'file' }],
      ['home/vcap/tmp/', { type: 'directory' }],
    ];
    for (const [name, expected] of cases) {
      const entry = byName.get(name);
      assert.ok(entry !== undefined, `${name} is in the layer`);
      if (expected.type !== undefined) assert.equal(entry.type, expected.type, name);
      if (expected.mode !== undefined) assert.equal(entry.mode, expected.mode, name);
      if (expected.linkname !== undefined) assert.equal(entry.linkname, expected.linkname, name);
      if (expected.body !== undefined) assert.equal(entry.body.toString(), expected.body, name);
    }
    assert.equal(entries.filter((entry) => entry.name === 'home/vcap/').length, 1, 'the droplet root "./" is not repeated');
  });

  test('adds missing parents and tmp/, keeps mode 0, xattrs and long names', async () => {
    const longName = `app/${'deep/'.repeat(30)}file.txt`;
    const droplet = gzipSync(
      await tarOf([
        { name: 'app/nested/dir/file', mode: 0o444, body: 'x' },
        // tar-stream writes its default for mode 0; a bit above the permission bits keeps the 0.
        { name: 'app/locked', mode: 0o100000, body: 'y' },
        { name: 'app/with-xattr', mode: 0o644, body: 'z', pax: { 'SCHILY.xattr.user.note': 'kept' } },
        { name: longName, mode: 0o644, body: 'long' },
      ] as TarEntry[]),
    );
    const converted = await convertDroplet(store, Readable.from([droplet]), { uid: 1234, gid: 5678 });
    const entries = await entriesOf(await readBlob(converted.layer.digest));
    const names = entries.map((entry) => entry.name);
    for (const parent of ['home/vcap/app/', 'home/vcap/app/nested/', 'home/vcap/app/nested/dir/', 'home/vcap/tmp/']) {
      assert.ok(names.includes(parent), `${parent} is added`);
    }
    assert.ok(names.indexOf('home/vcap/app/nested/dir/') < names.indexOf('home/vcap/app/nested/dir/file'), 'parents come first');
    const find = (name: string) => entries.find((entry) => entry.name === name);
    assert.equal(find('home/vcap/app/locked')?.mode, 0);
    assert.equal(find('home/vcap/app/nested/dir/file')?.uid, 1234);
    assert.equal(find('home/vcap/app/nested/dir/file')?.gid, 5678);
    assert.equal((find('home/vcap/app/with-xattr')?.pax as Record<string, string> | undefined)?.['SCHILY.xattr.user.note'], 'kept');
    assert.equal(find(`home/vcap/${longName}`)?.body.toString(), 'long');
    assert.deepEqual(converted.processTypes, {});
  });

  test('the same droplet always converts to the same layer', async () => {
    const droplet = await buildDroplet();
    const first = await convertDroplet(store, Readable.from([droplet]), vcap);
    const second = await convertDroplet(store, Readable.from([droplet]), vcap);
    assert.deepEqual(second, first);
  });

  const refused: [string, TarEntry[] | Buffer, RegExp][] = [
    ['an absolute path', [{ name: '/etc/passwd', body: 'x' }], /absolute path/],
    ['a ".." path', [{ name: 'app/../../etc/passwd', body: 'x' }], /"\.\."/],
    ['a hard link out of the droplet', [{ name: 'app/x', type: 'link', linkname: '../../etc/shadow' }], /hard-link target with "\.\."/],
    ['an absolute hard link', [{ name: 'app/x', type: 'link', linkname: '/etc/shadow' }], /absolute hard-link target/],
    ['a device node', [{ name: 'app/sda', type: 'block-device', devmajor: 8, devminor: 0 }], /block-device/],
    ['bytes that are not gzip', Buffer.from('definitely not a droplet'), /not a gzip-compressed tar/],
    ['gzip that is not a tar', gzipSync(Buffer.alloc(2048, 7)), /not a valid tar/],
  ];
  for (const [what, content, message] of refused) {
    test(`refuses ${what}, leaving nothing behind`, async () => {
      const droplet = Buffer.isBuffer(content) ? content : gzipSync(await tarOf([{ name: 'app/ok', body: 'fine' }, ...content]));
      await assert.rejects(convertDroplet(store, Readable.from([droplet]), vcap), (error: unknown) => {
        assert.ok(isRegistryError(error), String(error));
        assert.equal(error.code, 'BLOB_UPLOAD_INVALID');
        assert.equal(error.status, 400);
        assert.match(error.message, message);
        return true;
      });
      assert.equal(await uploadsLeft(), 0, 'the half-written layer is removed');
    });
  }
});
