import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { ManifestRecord } from '../../src/meta/meta-store.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { SqliteStatements } from '../../src/meta/sqlite/database.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag } from '../../src/oci/names.ts';
import { tempDir } from '../helpers/tmp.ts';

const repository = parseRepositoryName('team/app');
const latest = parseTag('latest');
const noReferences = { blobs: [], children: [] };

function manifest(nonce: string): ManifestRecord {
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, nonce }));
  return { digest: digestOf(bytes), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes };
}

// Two stores on one file stand for two replicas (or `berth gc`) sharing the embedded database.
describe('SQLite lookups remembered between writes', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let here: SqliteMetaStore;
  let there: SqliteMetaStore;
  before(async () => {
    root = await tempDir('berth-read-cache');
    here = SqliteMetaStore.open(join(root.path, 'berth.db'));
    there = SqliteMetaStore.open(join(root.path, 'berth.db'));
  });
  after(async () => {
    await here.close();
    await there.close();
    await root.remove();
  });

  it('sees a tag moved through another connection from the next turn of the event loop on', async () => {
    const first = manifest('first');
    const second = manifest('second');
    await here.manifests.put(repository, first, noReferences, [latest]);
    assert.equal((await here.manifests.get(repository, { kind: 'tag', tag: latest }))?.digest, first.digest);
    await nextTurn();
    await there.manifests.put(repository, second, noReferences, [latest]);
    // A request arriving now starts a new turn: the other connection's commit moved data_version.
    await nextTurn();
    assert.equal((await here.manifests.get(repository, { kind: 'tag', tag: latest }))?.digest, second.digest);
  });

  it('sees a manifest, a blob link and a tag page removed through another connection', async () => {
    const gone = manifest('gone');
    const digest = digestOf(Buffer.from('layer'));
    await here.blobs.link(repository, digest, 5);
    await here.manifests.put(repository, gone, noReferences, [parseTag('old')]);
    assert.equal(await here.blobs.linkedSize(repository, digest), 5);
    assert.ok(await here.manifests.get(repository, { kind: 'digest', digest: gone.digest }));
    assert.ok((await here.tags.list(repository, {})).includes(parseTag('old')));
    await nextTurn();
    await there.blobs.unlink(repository, digest);
    await there.manifests.delete(repository, gone.digest);
    await nextTurn();
    assert.equal(await here.blobs.linkedSize(repository, digest), undefined);
    assert.equal(await here.manifests.get(repository, { kind: 'digest', digest: gone.digest }), undefined);
    assert.ok(!(await here.tags.list(repository, {})).includes(parseTag('old')));
  });

  it('forgets at once what a write on its own connection may change, whichever statement layer wrote', async () => {
    const kept = manifest('kept');
    await here.manifests.put(repository, kept, noReferences, [parseTag('v1')]);
    assert.ok(await here.manifests.get(repository, { kind: 'tag', tag: parseTag('v1') }));
    // Same turn, same connection: the store's own delete.
    await here.tags.delete(repository, parseTag('v1'));
    assert.equal(await here.manifests.get(repository, { kind: 'tag', tag: parseTag('v1') }), undefined);
    // Same turn, same connection, through another user of the statement layer (GC, retention and the event queue write so).
    await here.manifests.put(repository, kept, noReferences, [parseTag('v2')]);
    assert.ok(await here.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }));
    new SqliteStatements(here.database).run('DELETE FROM tags WHERE name = ?', 'v2');
    assert.equal(await here.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }), undefined);
  });
});
