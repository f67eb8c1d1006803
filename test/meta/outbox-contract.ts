import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ManifestRecord, MetaStore, OutboxRow } from '../../src/meta/meta-store.ts';
import type { OperationsStore } from '../../src/meta/operations-store.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type RepositoryName } from '../../src/oci/names.ts';
import { registryError } from '../helpers/stores.ts';

export interface OutboxStores {
  meta: MetaStore;
  operations: OperationsStore;
  /** Makes every insert of an event queue row for `webhook` fail, as a database refusing the write would. */
  refuseEvents(webhook: string): Promise<void>;
  close(): Promise<void>;
}

const imageType = 'application/vnd.oci.image.manifest.v1+json';

/**
 * The outbox (`WriteOptions.outbox`): a change and the event queue rows
 * describing it are committed in one transaction, so that a change never
 * goes without its events and a failed change leaves none. Each driver's
 * operations test calls this.
 */
export function runOutboxContract(label: string, open: () => Promise<OutboxStores>): void {
  describe(`outbox: ${label}`, () => {
    let stores: OutboxStores;
    let meta: MetaStore;
    before(async () => {
      stores = await open();
      meta = stores.meta;
    });
    after(() => stores.close());

    const fresh = (): RepositoryName => parseRepositoryName(`outbox-${randomUUID().slice(0, 8)}`);
    const digest = (): Digest => digestOf(randomBytes(32));
    const record = (): ManifestRecord => {
      const bytes = Buffer.from(`{"schemaVersion":2,"nonce":"${randomUUID()}"}`);
      return { digest: digestOf(bytes), mediaType: imageType, bytes };
    };
    /** A webhook no other test uses, and `count` rows for it. */
    const hook = (count = 1): { webhook: string; rows: OutboxRow[] } => {
      const webhook = `hook-${randomUUID()}`;
      return { webhook, rows: Array.from({ length: count }, (_, n) => ({ webhook, body: `{"n":${n}}` })) };
    };
    const queued = async (webhook: string) => (await stores.operations.events.head(webhook, 100)).map((event) => event.body);

    it('commits a manifest put with its rows, in order', async () => {
      const repository = fresh();
      const { webhook, rows } = hook(2);
      const blob = digest();
      await meta.blobs.link(repository, blob, 10);
      const manifest = record();
      await meta.manifests.put(repository, manifest, { blobs: [blob], children: [] }, [parseTag('v1')], { outbox: rows });
      assert.deepEqual(await queued(webhook), ['{"n":0}', '{"n":1}']);
      assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v1') }))?.digest, manifest.digest);
    });

    it('leaves no rows when the put is refused inside its transaction', async () => {
      const repository = fresh();
      const { webhook, rows } = hook();
      await assert.rejects(
        meta.manifests.put(repository, record(), { blobs: [digest()], children: [] }, [parseTag('v1')], { outbox: rows }),
        registryError('MANIFEST_BLOB_UNKNOWN'),
      );
      const fixed = parseTag('stable');
      await meta.manifests.put(repository, record(), { blobs: [], children: [] }, [fixed]);
      await assert.rejects(meta.manifests.put(repository, record(), { blobs: [], children: [] }, [fixed], { fixedTags: [fixed], outbox: rows }), registryError('DENIED'));
      assert.deepEqual(await queued(webhook), []);
    });

    it('writes a removal’s rows only when it removed something', async () => {
      const repository = fresh();
      const manifest = record();
      const blob = digest();
      await meta.blobs.link(repository, blob, 10);
      await meta.manifests.put(repository, manifest, { blobs: [], children: [] }, [parseTag('v1')]);
      const removals: [string, (options: { outbox: OutboxRow[] }) => Promise<boolean>][] = [
        ['tag', (options) => meta.tags.delete(repository, parseTag('v1'), options)],
        ['manifest', (options) => meta.manifests.delete(repository, manifest.digest, options)],
        ['blob link', (options) => meta.blobs.unlink(repository, blob, options)],
      ];
      for (const [what, remove] of removals) {
        const { webhook, rows } = hook();
        assert.equal(await remove({ outbox: rows }), true, `the ${what} is removed`);
        assert.deepEqual(await queued(webhook), ['{"n":0}'], `the ${what}'s removal has its row`);
        const again = hook();
        assert.equal(await remove({ outbox: again.rows }), false, `the ${what} is gone already`);
        assert.deepEqual(await queued(again.webhook), [], `removing no ${what} writes no row`);
      }
    });

    it('commits retention’s and collection’s deletions with their rows, and only those that happen', async () => {
      const { namespace } = stores.operations;
      const repository = fresh();
      const manifest = record();
      await meta.manifests.put(repository, manifest, { blobs: [], children: [] }, [parseTag('old')]);
      const later = new Date(Date.now() + 60_000);
      const refused = hook();
      assert.equal(await namespace.deleteTag(repository, parseTag('old'), digest(), later, { outbox: refused.rows }), false, 'the tag names another manifest');
      const tag = hook();
      assert.equal(await namespace.deleteTag(repository, parseTag('old'), manifest.digest, later, { outbox: tag.rows }), true);
      const early = hook();
      assert.equal(await namespace.deleteUnreachable({ repository, digest: manifest.digest }, new Date(0), { outbox: early.rows }), undefined, 'newer than the cutoff');
      const gone = hook();
      assert.equal(await namespace.deleteUnreachable({ repository, digest: manifest.digest }, later, { outbox: gone.rows }), manifest.bytes.length);
      assert.deepEqual([await queued(refused.webhook), await queued(tag.webhook), await queued(early.webhook), await queued(gone.webhook)], [[], ['{"n":0}'], [], ['{"n":0}']]);
    });

    it('makes no change when its rows cannot be written', async () => {
      const repository = fresh();
      const { webhook, rows } = hook();
      await stores.refuseEvents(webhook);
      const manifest = record();
      await assert.rejects(meta.manifests.put(repository, manifest, { blobs: [], children: [] }, [parseTag('v1')], { outbox: rows }));
      assert.equal(await meta.manifests.get(repository, { kind: 'digest', digest: manifest.digest }), undefined, 'the manifest was not stored');

      const kept = record();
      const blob = digest();
      await meta.blobs.link(repository, blob, 10);
      await meta.manifests.put(repository, kept, { blobs: [], children: [] }, [parseTag('v2')]);
      await assert.rejects(meta.tags.delete(repository, parseTag('v2'), { outbox: rows }));
      await assert.rejects(meta.manifests.delete(repository, kept.digest, { outbox: rows }));
      await assert.rejects(meta.blobs.unlink(repository, blob, { outbox: rows }));
      assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }))?.digest, kept.digest, 'the tag and manifest stay');
      assert.equal(await meta.blobs.linkedSize(repository, blob), 10, 'the link stays');
      const later = new Date(Date.now() + 60_000);
      await assert.rejects(stores.operations.namespace.deleteTag(repository, parseTag('v2'), kept.digest, later, { outbox: rows }));
      assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }))?.digest, kept.digest, 'retention left the tag');
      await meta.tags.delete(repository, parseTag('v2'));
      await assert.rejects(stores.operations.namespace.deleteUnreachable({ repository, digest: kept.digest }, later, { outbox: rows }));
      assert.notEqual(await meta.manifests.get(repository, { kind: 'digest', digest: kept.digest }), undefined, 'collection left the manifest');
      assert.deepEqual(await queued(webhook), []);
    });
  });
}
