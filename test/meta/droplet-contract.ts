import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Composition, DropletStore, RecordImage, RootfsImage, StagedDroplet, StoredLayer } from '../../src/meta/droplet-store.ts';
import type { MetaStore } from '../../src/meta/meta-store.ts';
import type { OperationsStore } from '../../src/meta/operations-store.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type RepositoryName } from '../../src/oci/names.ts';

export interface OpenedDropletStores {
  meta: MetaStore;
  operations: OperationsStore;
  droplets: DropletStore;
  close(): Promise<void>;
}

const imageType = 'application/vnd.oci.image.manifest.v1+json';
const randomDigest = (): Digest => digestOf(randomBytes(16));
const layer = (): StoredLayer => ({ digest: randomDigest(), size: 1000 + Math.floor(Math.random() * 1000), diffId: randomDigest() });

function droplet(guid: string, stagedAt: Date, processTypes: Record<string, string> = { web: './start' }): StagedDroplet {
  return { guid, dropletDigest: randomDigest(), stagedAt, layer: layer(), processTypes };
}

function rootfsImage(repository: RepositoryName): RootfsImage {
  const bytes = Buffer.from(JSON.stringify({ rootfs: randomUUID() }));
  return { repository, digest: digestOf(bytes), mediaType: imageType, bytes, config: { digest: randomDigest(), size: 100 } };
}

function record(repository: RepositoryName, staged: StagedDroplet): RecordImage {
  const bytes = Buffer.from(JSON.stringify({ droplet: staged.guid, layer: staged.layer.digest }));
  return { repository, digest: digestOf(bytes), mediaType: imageType, bytes, config: { digest: randomDigest(), size: 2 }, tag: `droplet-${randomUUID()}` };
}

function composition(repository: RepositoryName, app: string, staged: StagedDroplet, rootfs: StoredLayer): Composition {
  const bytes = Buffer.from(JSON.stringify({ composed: randomUUID() }));
  return {
    repository,
    app,
    dropletGuid: staged.guid,
    digest: digestOf(bytes),
    mediaType: imageType,
    bytes,
    config: { digest: randomDigest(), size: 321 },
    rootfs: { digest: rootfs.digest, size: rootfs.size, diffId: rootfs.diffId },
    dropletLayer: staged.layer,
  };
}

/**
 * The behaviour every DropletStore promises (src/meta/droplet-store.ts):
 * records per prefix, immutable guids, forward-only rootfs, and
 * compositions that are ordinary manifests with ordinary links.
 */
export function runDropletStoreContract(label: string, open: () => Promise<OpenedDropletStores>): void {
  describe(`DropletStore contract: ${label}`, () => {
    let stores: OpenedDropletStores;
    let store: DropletStore;
    before(async () => {
      stores = await open();
      store = stores.droplets;
    });
    after(() => stores?.close());

    const fresh = () => `p${randomUUID().slice(0, 8)}/`;
    const put = (source: string, app: string, repository: RepositoryName, staged: StagedDroplet, keep: number) =>
      store.droplets.put(source, app, staged, record(repository, staged), keep);

    /** A new prefix with a rootfs and app `app` whose droplet `guid` is recorded (keeping `keep`) and composed; nothing stored for the composition yet. */
    const composedDroplet = async (guid: string, keep: number) => {
      const source = fresh();
      const repository = parseRepositoryName(`${source}app`);
      const rootfs = { ...layer(), origin: 'test', importedAt: new Date() };
      await store.rootfs.add(source, rootfs, rootfsImage(parseRepositoryName(`${source}rootfs`)), 1000);
      const staged = droplet(guid, new Date(1000));
      await put(source, 'app', repository, staged, keep);
      return { source, repository, staged, composed: composition(repository, 'app', staged, rootfs) };
    };

    it('records droplets per app; latest is the most recent; guids are sorted', async () => {
      const source = fresh();
      const repository = parseRepositoryName(`${source}space/app`);
      const first = droplet('b-guid', new Date(1000));
      const second = droplet('a-guid', new Date(2000), { web: 'web', worker: 'work' });
      assert.deepEqual(await put(source, 'space/app', repository, first, 5), first);
      assert.deepEqual(await put(source, 'space/app', repository, second, 5), second);
      assert.deepEqual(await store.droplets.latest(source, 'space/app'), second);
      assert.deepEqual(await store.droplets.get(source, 'space/app', 'b-guid'), first);
      assert.deepEqual(await store.droplets.guids(source, 'space/app'), ['a-guid', 'b-guid']);
      assert.deepEqual(await store.droplets.apps(source, {}), ['space/app']);
      assert.deepEqual(await store.droplets.apps(fresh(), {}), [], 'scoped by prefix');
      assert.deepEqual(await store.conversions.get(second.dropletDigest), { dropletDigest: second.dropletDigest, layer: second.layer, processTypes: second.processTypes });
      assert.equal(await stores.meta.blobs.linkedSize(repository, first.layer.digest), first.layer.size, 'the droplet layer is linked into the repository');
      const links = await stores.operations.namespace.unreferencedLinks(new Date(Date.now() + 60_000), undefined, 1000);
      assert.ok(!links.items.some((link) => link.digest === first.layer.digest), 'and referenced by its record, with no image composed yet');
    });

    it('a guid is recorded once: putting it again returns what was recorded', async () => {
      const source = fresh();
      const repository = parseRepositoryName(`${source}app`);
      const original = droplet('guid-1', new Date(1000));
      await put(source, 'app', repository, original, 5);
      const other = droplet('guid-1', new Date(5000));
      assert.deepEqual(await put(source, 'app', repository, other, 5), original);
      assert.deepEqual(await store.droplets.latest(source, 'app'), original);
    });

    it('the same guid put at once from two writers: both see one winner', async () => {
      const source = fresh();
      const repository = parseRepositoryName(`${source}app`);
      const [a, b] = [droplet('same', new Date(1000)), droplet('same', new Date(1000))];
      const results = await Promise.all([put(source, 'app', repository, a, 5), put(source, 'app', repository, b, 5)]);
      assert.equal(results[0]?.dropletDigest, results[1]?.dropletDigest);
      assert.equal((await store.droplets.get(source, 'app', 'same'))?.dropletDigest, results[0]?.dropletDigest);
    });

    it('keeps the newest droplets, forgetting older ones with their compositions', async () => {
      const { source, repository, staged: old, composed } = await composedDroplet('old', 2);
      await store.compositions.put(source, composed, parseTag('old'), new Date());
      assert.equal((await stores.meta.manifests.get(repository, { kind: 'tag', tag: parseTag('old') }))?.digest, composed.digest, 'an ordinary manifest, tagged');
      await put(source, 'app', repository, droplet('mid', new Date(2000)), 2);
      await put(source, 'app', repository, droplet('new', new Date(3000)), 2);
      assert.deepEqual(await store.droplets.guids(source, 'app'), ['mid', 'new']);
      assert.equal(await store.compositions.get(source, repository, composed.digest, new Date()), undefined);
      assert.equal(await stores.meta.manifests.get(repository, { kind: 'digest', digest: composed.digest }), undefined, 'its manifest is gone');
      assert.equal(await store.conversions.get(old.dropletDigest), undefined, 'and its conversion');
    });

    it('deletes a droplet with its compositions', async () => {
      const { source, repository, staged, composed } = await composedDroplet('g', 5);
      await store.compositions.put(source, composed, parseTag('latest'), new Date());
      assert.equal(await store.droplets.delete(source, 'app', 'g'), true);
      assert.equal(await store.droplets.delete(source, 'app', 'g'), false);
      assert.equal(await store.droplets.latest(source, 'app'), undefined);
      assert.equal(await stores.meta.manifests.get(repository, { kind: 'tag', tag: parseTag('latest') }), undefined);
      const links = await stores.operations.namespace.unreferencedLinks(new Date(Date.now() + 60_000), undefined, 1000);
      assert.ok(
        links.items.some((link) => link.repository === repository && link.digest === staged.layer.digest),
        'its layer is unreferenced: GC reclaims it',
      );
    });

    it('a composition of a droplet forgotten meanwhile is not stored (a pull racing a delete or keepDroplets)', async () => {
      const { source, repository, staged, composed } = await composedDroplet('g', 5);
      await store.droplets.delete(source, 'app', 'g');
      assert.equal(await store.compositions.put(source, composed, parseTag('g'), new Date()), false);
      assert.equal(await store.compositions.get(source, repository, composed.digest, new Date()), undefined);
      assert.equal(await stores.meta.manifests.get(repository, { kind: 'digest', digest: composed.digest }), undefined, 'no manifest keeps its blobs');
      await put(source, 'app', repository, staged, 5);
      assert.equal(await store.compositions.put(source, composed, parseTag('g'), new Date()), true);
    });

    it('rootfs moves forward only: a digest seen before is not made latest again, except by rollback', async () => {
      const source = fresh();
      const images = parseRepositoryName(`${source}rootfs`);
      const v1 = { ...layer(), origin: 'file:v1', importedAt: new Date(Date.now() - 2000) };
      const v2 = { ...layer(), origin: 'import:v2', importedAt: new Date(Date.now() - 1000) };
      assert.equal(await store.rootfs.add(source, v1, rootfsImage(images), 60_000), true);
      assert.equal(await store.rootfs.add(source, v2, rootfsImage(images), 60_000), true);
      assert.equal((await store.rootfs.latest(source))?.digest, v2.digest);
      assert.equal(await store.rootfs.add(source, { ...v1, origin: 'file:v1-touched', importedAt: new Date() }, rootfsImage(images), 60_000), false);
      assert.equal((await store.rootfs.latest(source))?.digest, v2.digest, 'touching the old file does not roll back');
      assert.equal((await store.rootfs.byOrigin(source, 'file:v1-touched'))?.digest, v1.digest, 'its new origin is remembered, so it is not imported again');
      const history = await store.rootfs.history(source);
      assert.deepEqual(
        history.map((entry) => entry.digest),
        [v2.digest, v1.digest],
      );
      assert.equal(history[0]?.expiresAt, undefined);
      assert.ok(history[1]?.expiresAt !== undefined);

      const rolledBack = await store.rootfs.rollback(source, v1.digest, rootfsImage(images), 60_000, new Date());
      assert.equal(rolledBack?.digest, v1.digest);
      assert.equal((await store.rootfs.latest(source))?.digest, v1.digest);
      assert.equal(await store.rootfs.rollback(source, randomDigest(), rootfsImage(images), 60_000, new Date()), undefined);
      assert.equal(await stores.meta.blobs.linkedSize(images, v1.digest), v1.size, 'the rootfs image keeps its layer linked');
    });

    it('compositions: readable while their rootfs is current or retained; expire removes them and their manifests', async () => {
      const source = fresh();
      const repository = parseRepositoryName(`${source}app`);
      const images = parseRepositoryName(`${source}rootfs`);
      const v1 = { ...layer(), origin: 'a', importedAt: new Date(Date.now() - 10_000) };
      const v1Image = rootfsImage(images);
      await store.rootfs.add(source, v1, v1Image, 1000);
      const staged = droplet('g', new Date(1000));
      await put(source, 'app', repository, staged, 5);
      const composed = composition(repository, 'app', staged, v1);
      await store.compositions.put(source, composed, parseTag('g'), new Date());
      await store.compositions.put(source, composed, parseTag('g'), new Date());
      const found = await store.compositions.get(source, repository, composed.digest, new Date());
      assert.deepEqual({ ...found, bytes: Buffer.from(found?.bytes ?? []) }, { ...composed, bytes: Buffer.from(composed.bytes) });
      assert.equal(await store.compositions.blobSize(source, repository, composed.config.digest, new Date()), composed.config.size);
      assert.equal(await store.compositions.blobSize(source, repository, v1.digest, new Date()), v1.size);
      assert.equal(await store.compositions.blobSize(source, repository, staged.layer.digest, new Date()), staged.layer.size);
      assert.equal(await store.compositions.blobSize(source, parseRepositoryName(`${source}other`), v1.digest, new Date()), undefined);
      for (const blob of [composed.config, v1, staged.layer]) assert.equal(await stores.meta.blobs.linkedSize(repository, blob.digest), blob.size);

      // v2 replaces v1, whose retention (1 s from v2's import, 10 s ago) is over.
      const v2 = { ...layer(), origin: 'b', importedAt: new Date(Date.now() - 9000) };
      await store.rootfs.add(source, v2, rootfsImage(images), 1000);
      assert.equal(await store.compositions.get(source, repository, composed.digest, new Date()), undefined, 'past retention: not readable');
      assert.ok((await store.compositions.expire(source, new Date())) >= 1);
      assert.equal(await stores.meta.manifests.get(repository, { kind: 'digest', digest: composed.digest }), undefined);
      assert.equal(await stores.meta.manifests.get(images, { kind: 'digest', digest: v1Image.digest }), undefined, "the old rootfs's image goes too");
      const links = await stores.operations.namespace.unreferencedLinks(new Date(Date.now() + 60_000), undefined, 100);
      const unreferenced = links.items.filter((link) => link.repository === repository).map((link) => link.digest);
      assert.ok(unreferenced.includes(v1.digest), 'the old rootfs link is now unreferenced: garbage collection reclaims it');
      assert.ok(unreferenced.includes(composed.config.digest));
      assert.ok(!unreferenced.includes(staged.layer.digest), "the droplet's record still references its layer");
    });
  });
}
