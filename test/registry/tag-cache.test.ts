import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type Tag } from '../../src/oci/names.ts';
import { TagListCache } from '../../src/registry/tag-cache.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('the tag list cache', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let meta: SqliteMetaStore;
  const repository = parseRepositoryName('cached/app');
  const manifestBytes = Buffer.from('{"schemaVersion":2}');
  const record = { digest: digestOf(manifestBytes), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: manifestBytes };
  const put = (tags: string[]) => meta.manifests.put(repository, record, { blobs: [], children: [] }, tags.map(parseTag));

  before(async () => {
    dir = await tempDir('berth-tag-cache');
    meta = SqliteMetaStore.open(`${dir.path}/berth.db`);
  });
  after(async () => {
    await meta.close();
    await dir.remove();
  });

  it('pages exactly as the store does', async () => {
    const cache = new TagListCache();
    const tags = ['1', '10', '9', 'A', 'B', '_x', 'a', 'a-b', 'a.b', 'a_b', 'b'];
    await put(tags);
    for (const page of [{}, { limit: 3 }, { last: 'A' }, { last: 'a', limit: 2 }, { last: '0' }, { last: 'zz' }, { limit: 0 }, { last: 'a-a', limit: 4 }]) {
      assert.deepEqual(await cache.page(meta, repository, page), await meta.tags.list(repository, page), JSON.stringify(page));
    }
  });

  it('sees every change, however it was made', async () => {
    const cache = new TagListCache();
    const listed = async () => (await cache.page(meta, repository, {})) as Tag[];
    const before = await listed();
    await put(['new']);
    assert.ok((await listed()).includes(parseTag('new')));
    await meta.tags.delete(repository, parseTag('new'));
    assert.deepEqual(await listed(), before);
    await meta.manifests.delete(repository, record.digest);
    assert.deepEqual(await listed(), []);
  });

  it('answers undefined for a repository that does not exist', async () => {
    assert.equal(await new TagListCache().page(meta, parseRepositoryName('no/such'), {}), undefined);
  });

  it('does not keep a repository with more tags than its bound, yet answers for it', async () => {
    const cache = new TagListCache(2);
    await put(['p', 'q', 'r']);
    assert.deepEqual(await cache.page(meta, repository, { limit: 2 }), ['p', 'q']);
  });
});
