import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { RegistryError } from '../../src/errors/registry-error.ts';
import type { ManifestRecord, MetaStore } from '../../src/meta/meta-store.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type RepositoryName } from '../../src/oci/names.ts';
import { registryError, type OpenedStore, type OpenStore } from '../helpers/stores.ts';

const imageType = 'application/vnd.oci.image.manifest.v1+json';

/**
 * The behaviour every MetaStore promises (src/meta/meta-store.ts). Each
 * driver's test file calls this with a way to open an empty store.
 */
export function runMetaStoreContract(label: string, openStore: OpenStore<MetaStore>): void {
  describe(`MetaStore contract: ${label}`, () => {
    let opened: OpenedStore<MetaStore>;
    let meta: MetaStore;
    before(async () => {
      opened = await openStore();
      meta = opened.store;
    });
    after(async () => {
      await meta.close();
      await opened.close();
    });

    /** A repository no other test touches. */
    const freshRepository = (base = 'repo'): RepositoryName => parseRepositoryName(`${base}-${randomUUID().slice(0, 8)}`);
    const blobDigest = (): Digest => digestOf(randomBytes(32));

    /** A manifest record over random bytes (the store does not parse them). */
    function manifest(extra: Partial<ManifestRecord> = {}): ManifestRecord {
      const bytes = Buffer.from(`{ "schemaVersion": 2,\n  "nonce": "${randomUUID()}" }`);
      return { digest: digestOf(bytes), mediaType: imageType, bytes, ...extra };
    }

    async function linked(repository: RepositoryName, count: number): Promise<Digest[]> {
      const digests = Array.from({ length: count }, blobDigest);
      for (const digest of digests) await meta.blobs.link(repository, digest, 100);
      return digests;
    }

    describe('blob links', () => {
      it('makes a blob readable only in repositories it is linked into', async () => {
        const [one, two] = [freshRepository(), freshRepository()];
        const digest = blobDigest();
        assert.equal(await meta.blobs.linkedSize(one, digest), undefined);
        assert.equal(await meta.blobs.storedSize(digest), undefined);
        assert.equal(await meta.repositories.exists(one), false);
        await meta.blobs.link(one, digest, 1234);
        await meta.blobs.link(one, digest, 1234);
        assert.equal(await meta.blobs.linkedSize(one, digest), 1234);
        assert.equal(await meta.blobs.linkedSize(two, digest), undefined);
        assert.equal(await meta.blobs.storedSize(digest), 1234);
        assert.equal(await meta.repositories.exists(one), true);
        assert.equal(await meta.repositories.exists(two), false);
      });

      it('unlinks from one repository only, keeping the stored blob known', async () => {
        const [one, two] = [freshRepository(), freshRepository()];
        const digest = blobDigest();
        await meta.blobs.link(one, digest, 10);
        await meta.blobs.link(two, digest, 10);
        assert.equal(await meta.blobs.unlink(one, digest), true);
        assert.equal(await meta.blobs.unlink(one, digest), false);
        assert.equal(await meta.blobs.unlink(freshRepository(), digest), false);
        assert.equal(await meta.blobs.linkedSize(one, digest), undefined);
        assert.equal(await meta.blobs.linkedSize(two, digest), 10);
        assert.equal(await meta.blobs.storedSize(digest), 10);
      });

      it('keeps sizes beyond 32 bits exact', async () => {
        const repository = freshRepository();
        const digest = blobDigest();
        const size = 2 ** 40 + 3;
        await meta.blobs.link(repository, digest, size);
        assert.equal(await meta.blobs.linkedSize(repository, digest), size);
      });

      it('links the same blob from many requests at once', async () => {
        const repository = freshRepository();
        const digest = blobDigest();
        await Promise.all(Array.from({ length: 8 }, () => meta.blobs.link(repository, digest, 5)));
        assert.equal(await meta.blobs.linkedSize(repository, digest), 5);
      });
    });

    describe('manifests', () => {
      it('stores exact bytes with what the index keeps, by digest and by tag', async () => {
        const repository = freshRepository();
        const blobs = await linked(repository, 2);
        const subject = digestOf(randomBytes(8));
        const record = manifest({ subject, artifactType: 'application/vnd.example+type', annotations: { 'org.example': 'yes' } });
        await meta.manifests.put(repository, record, { blobs, children: [] }, [parseTag('v1')]);
        const byDigest = await meta.manifests.get(repository, { kind: 'digest', digest: record.digest });
        assert.ok(byDigest !== undefined);
        assert.equal(byDigest.digest, record.digest);
        assert.equal(byDigest.mediaType, imageType);
        assert.deepEqual(Buffer.from(byDigest.bytes), Buffer.from(record.bytes));
        assert.equal(byDigest.subject, subject);
        assert.equal(byDigest.artifactType, 'application/vnd.example+type');
        assert.deepEqual(byDigest.annotations, { 'org.example': 'yes' });
        const byTag = await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v1') });
        assert.equal(byTag?.digest, record.digest);
        assert.equal(await meta.manifests.get(freshRepository(), { kind: 'digest', digest: record.digest }), undefined);
        assert.equal(await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }), undefined);
      });

      it('leaves optional fields out when the manifest has none', async () => {
        const repository = freshRepository();
        const record = manifest();
        await meta.manifests.put(repository, record, { blobs: [], children: [] }, []);
        const stored = await meta.manifests.get(repository, { kind: 'digest', digest: record.digest });
        assert.ok(stored !== undefined);
        assert.deepEqual(Object.keys(stored).sort(), ['bytes', 'digest', 'mediaType']);
      });

      it('refuses a manifest whose blobs are not in the repository, storing nothing', async () => {
        const repository = freshRepository();
        const elsewhere = freshRepository();
        const [present] = await linked(repository, 1);
        const [foreign] = await linked(elsewhere, 1);
        const record = manifest();
        await assert.rejects(
          meta.manifests.put(repository, record, { blobs: [present as Digest, foreign as Digest], children: [] }, [parseTag('latest')]),
          registryError('MANIFEST_BLOB_UNKNOWN'),
        );
        assert.equal(await meta.manifests.get(repository, { kind: 'digest', digest: record.digest }), undefined);
        assert.deepEqual(await meta.tags.list(repository, {}), []);
      });

      it("names every missing blob and child, in the manifest's order, one error each", async () => {
        const repository = freshRepository();
        const [present] = await linked(repository, 1);
        const missingBlobs = [digestOf(randomBytes(8)), digestOf(randomBytes(8))];
        const child = manifest();
        const error = await meta.manifests
          .put(repository, manifest(), { blobs: [missingBlobs[0] as Digest, present as Digest, missingBlobs[1] as Digest], children: [child.digest] }, [])
          .then(
            () => assert.fail('the put succeeded'),
            (thrown: unknown) => thrown as RegistryError,
          );
        const errors = [error, ...error.more];
        assert.deepEqual(
          errors.map((entry) => [entry.code, entry.detail]),
          [...missingBlobs, child.digest].map((digest) => ['MANIFEST_BLOB_UNKNOWN', { digest }]),
        );
      });

      it('refuses an index whose child manifests are not in the repository', async () => {
        const repository = freshRepository();
        const child = manifest();
        const index = manifest({ mediaType: 'application/vnd.oci.image.index.v1+json' });
        await assert.rejects(meta.manifests.put(repository, index, { blobs: [], children: [child.digest] }, []), registryError('MANIFEST_BLOB_UNKNOWN'));
        await meta.manifests.put(repository, child, { blobs: [], children: [] }, []);
        await meta.manifests.put(repository, index, { blobs: [], children: [child.digest] }, [parseTag('multi')]);
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('multi') }))?.digest, index.digest);
      });

      it('stores a manifest ahead of what it references when asked (pull-through caches)', async () => {
        const repository = freshRepository();
        const child = manifest();
        const index = manifest({ mediaType: 'application/vnd.oci.image.index.v1+json' });
        await meta.manifests.put(repository, index, { blobs: [], children: [child.digest] }, [parseTag('cached')], { referencesPending: true });
        await meta.manifests.put(repository, child, { blobs: [blobDigest()], children: [] }, [], { referencesPending: true });
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('cached') }))?.digest, index.digest);
        assert.equal((await meta.manifests.get(repository, { kind: 'digest', digest: child.digest }))?.digest, child.digest);
        assert.equal(await meta.repositories.exists(repository), true);
      });

      it('accepts the same manifest again, adding tags', async () => {
        const repository = freshRepository();
        const record = manifest();
        await meta.manifests.put(repository, record, { blobs: [], children: [] }, [parseTag('a')]);
        await meta.manifests.put(repository, record, { blobs: [], children: [] }, [parseTag('a'), parseTag('b')]);
        assert.deepEqual(await meta.tags.list(repository, {}), ['a', 'b']);
      });

      it('moves a tag to the manifest put last', async () => {
        const repository = freshRepository();
        const [first, second] = [manifest(), manifest()];
        const tag = parseTag('latest');
        await meta.manifests.put(repository, first, { blobs: [], children: [] }, [tag]);
        await meta.manifests.put(repository, second, { blobs: [], children: [] }, [tag]);
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag }))?.digest, second.digest);
        assert.equal((await meta.manifests.get(repository, { kind: 'digest', digest: first.digest }))?.digest, first.digest);
      });

      it('settles a tag moved by many requests at once on one of them', async () => {
        const repository = freshRepository();
        const records = Array.from({ length: 6 }, () => manifest());
        const tag = parseTag('race');
        await Promise.all(records.map((record) => meta.manifests.put(repository, record, { blobs: [], children: [] }, [tag, parseTag('other')])));
        const winner = await meta.manifests.get(repository, { kind: 'tag', tag });
        assert.ok(records.some((record) => record.digest === winner?.digest));
        assert.deepEqual(await meta.tags.list(repository, {}), ['other', 'race']);
      });

      it('deletes a manifest with its tags, in its repository only', async () => {
        const [one, two] = [freshRepository(), freshRepository()];
        const record = manifest();
        const kept = manifest();
        for (const repository of [one, two]) await meta.manifests.put(repository, record, { blobs: [], children: [] }, [parseTag('x'), parseTag('y')]);
        await meta.manifests.put(one, kept, { blobs: [], children: [] }, [parseTag('z')]);
        assert.equal(await meta.manifests.delete(one, record.digest), true);
        assert.equal(await meta.manifests.delete(one, record.digest), false);
        assert.equal(await meta.manifests.delete(freshRepository(), record.digest), false);
        assert.equal(await meta.manifests.get(one, { kind: 'digest', digest: record.digest }), undefined);
        assert.equal(await meta.manifests.get(one, { kind: 'tag', tag: parseTag('x') }), undefined);
        assert.deepEqual(await meta.tags.list(one, {}), ['z']);
        assert.deepEqual(await meta.tags.list(two, {}), ['x', 'y']);
      });

      it('lists referrers sorted by digest, filtered by artifact type', async () => {
        const repository = freshRepository();
        const subject = manifest();
        await meta.manifests.put(repository, subject, { blobs: [], children: [] }, []);
        const referrers = [
          manifest({ subject: subject.digest, artifactType: 'application/vnd.example.sbom' }),
          manifest({ subject: subject.digest, artifactType: 'application/vnd.example.signature', annotations: { 'org.example.by': 'ci' } }),
          manifest({ subject: subject.digest, artifactType: 'application/vnd.example.sbom' }),
        ];
        for (const record of referrers) await meta.manifests.put(repository, record, { blobs: [], children: [] }, []);
        await meta.manifests.put(freshRepository(), manifest({ subject: subject.digest }), { blobs: [], children: [] }, []);

        const all = await meta.manifests.referrers(repository, subject.digest);
        assert.deepEqual(
          all.map((descriptor) => descriptor.digest),
          referrers.map((record) => record.digest).sort(),
        );
        const signature = all.find((descriptor) => descriptor.artifactType === 'application/vnd.example.signature');
        assert.deepEqual(signature, {
          mediaType: imageType,
          digest: referrers[1]?.digest,
          size: referrers[1]?.bytes.byteLength,
          artifactType: 'application/vnd.example.signature',
          annotations: { 'org.example.by': 'ci' },
        });
        const sboms = await meta.manifests.referrers(repository, subject.digest, 'application/vnd.example.sbom');
        assert.deepEqual(
          sboms.map((descriptor) => descriptor.digest),
          [referrers[0]?.digest, referrers[2]?.digest].sort(),
        );
        assert.deepEqual(await meta.manifests.referrers(repository, subject.digest, 'application/none'), []);
        assert.deepEqual(await meta.manifests.referrers(repository, digestOf(randomBytes(4))), []);
      });

      it('never moves a fixed tag, even when two pushes race to create it', async () => {
        const repository = freshRepository();
        const [first, second] = [manifest(), manifest()];
        const none = { blobs: [], children: [] };
        const fixed = { fixedTags: [parseTag('v1')] };
        await meta.manifests.put(repository, first, none, [parseTag('v1'), parseTag('latest')], fixed);
        await meta.manifests.put(repository, first, none, [parseTag('v1')], fixed);
        await assert.rejects(meta.manifests.put(repository, second, none, [parseTag('v1'), parseTag('latest')], fixed), registryError('DENIED'));
        assert.equal(await meta.manifests.get(repository, { kind: 'digest', digest: second.digest }), undefined, 'nothing stored');
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('latest') }))?.digest, first.digest);
        await meta.manifests.put(repository, second, none, [parseTag('latest')], fixed);
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('latest') }))?.digest, second.digest, 'other tags move');

        const racing = Array.from({ length: 6 }, () => manifest());
        const results = await Promise.allSettled(racing.map((each) => meta.manifests.put(repository, each, none, [parseTag('v2')], { fixedTags: [parseTag('v2')] })));
        assert.equal(results.filter((result) => result.status === 'fulfilled').length, 1, 'exactly one push creates the tag');
        const winner = racing[results.findIndex((result) => result.status === 'fulfilled')];
        assert.equal((await meta.manifests.get(repository, { kind: 'tag', tag: parseTag('v2') }))?.digest, winner?.digest);
      });
    });

    describe('tags and catalog', () => {
      // Byte order, which differs from every natural-language collation.
      const tagNames = ['v1.0', 'v1-0', 'V2', 'latest', '_private', '10', '9', 'v1_0', 'Latest'];

      it('lists tags in byte order, page by page', async () => {
        const repository = freshRepository();
        const record = manifest();
        const tags = tagNames.map(parseTag);
        await meta.manifests.put(repository, record, { blobs: [], children: [] }, tags);
        const sorted = [...tagNames].sort(compareBytes);
        assert.deepEqual(await meta.tags.list(repository, {}), sorted);
        assert.deepEqual(await meta.tags.list(repository, { limit: 3 }), sorted.slice(0, 3));
        assert.deepEqual(await meta.tags.list(repository, { last: sorted[2] as string, limit: 3 }), sorted.slice(3, 6));
        assert.deepEqual(await meta.tags.list(repository, { last: sorted[2] as string }), sorted.slice(3));
        assert.deepEqual(await meta.tags.list(repository, { last: 'zzz' }), []);
        assert.deepEqual(await meta.tags.list(repository, { limit: 0 }), []);
        assert.deepEqual(await meta.tags.list(freshRepository(), {}), []);
      });

      it('deletes one tag, keeping the manifest', async () => {
        const repository = freshRepository();
        const record = manifest();
        await meta.manifests.put(repository, record, { blobs: [], children: [] }, [parseTag('a'), parseTag('b')]);
        assert.equal(await meta.tags.delete(repository, parseTag('a')), true);
        assert.equal(await meta.tags.delete(repository, parseTag('a')), false);
        assert.deepEqual(await meta.tags.list(repository, {}), ['b']);
        assert.equal((await meta.manifests.get(repository, { kind: 'digest', digest: record.digest }))?.digest, record.digest);
      });

      it('changes the tag version with every change to the tags, and only then', async () => {
        const version = meta.tags.version?.bind(meta.tags);
        assert.ok(version, 'both stores keep a tag version');
        const repository = freshRepository();
        assert.equal(await version(repository), undefined);
        const first = manifest();
        await meta.manifests.put(repository, first, { blobs: [], children: [] }, [parseTag('a')]);
        const seen = [await version(repository)];
        const record = async (work: () => Promise<unknown>) => {
          await work();
          seen.push(await version(repository));
        };
        await meta.blobs.link(repository, blobDigest(), 1);
        assert.equal(await version(repository), seen[0], 'a blob link is not a tag change');
        const second = manifest();
        await record(() => meta.manifests.put(repository, second, { blobs: [], children: [] }, [parseTag('a')]));
        await record(() => meta.manifests.put(repository, second, { blobs: [], children: [] }, [parseTag('b')]));
        await record(() => meta.tags.delete(repository, parseTag('a')));
        await record(() => meta.manifests.delete(repository, second.digest));
        assert.equal(new Set(seen).size, seen.length, `every change gives a new version: ${seen.join(', ')}`);
        const other = freshRepository();
        await meta.manifests.put(other, manifest(), { blobs: [], children: [] }, [parseTag('x')]);
        assert.equal(await version(repository), seen[seen.length - 1], 'another repository does not change it');
      });

      it('catalogs repositories holding manifests, in byte order, page by page', async () => {
        const base = `cat${randomUUID().slice(0, 6)}`;
        const names = ['a-b', 'a.b', 'a/b', 'a0', 'a_b', 'ab', 'a__b'].map((suffix) => parseRepositoryName(`${base}/${suffix}`));
        for (const name of names) await meta.manifests.put(name, manifest(), { blobs: [], children: [] }, []);
        await meta.blobs.link(parseRepositoryName(`${base}/blobs-only`), blobDigest(), 1);
        const sorted = [...names].sort(compareBytes);
        const listed = (await meta.repositories.list({ last: base })).filter((name) => name.startsWith(`${base}/`));
        assert.deepEqual(listed, sorted);
        const first = await meta.repositories.list({ last: sorted[1] as string, limit: 2 });
        assert.deepEqual(first, sorted.slice(2, 4));
        assert.deepEqual(await meta.repositories.list({ limit: 0 }), []);
      });
    });

    describe('upload sessions', () => {
      const session = (updatedAt = new Date()) => ({
        id: randomUUID(),
        repository: freshRepository(),
        size: 0,
        startedAt: new Date(updatedAt.getTime() - 1000),
        updatedAt,
      });

      it('keeps a session as created', async () => {
        const created = session(new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 678)));
        await meta.uploads.create(created);
        assert.deepEqual(await meta.uploads.get(created.id), created);
        assert.equal(await meta.uploads.get(randomUUID()), undefined);
      });

      it('keeps the user who started a session', async () => {
        const owned = { ...session(), owner: 'alice' };
        await meta.uploads.create(owned);
        assert.equal((await meta.uploads.get(owned.id))?.owner, 'alice');
        const stale = await meta.uploads.staleSince(new Date(Date.now() + 60_000));
        assert.equal(stale.find((found) => found.id === owned.id)?.owner, 'alice');
      });

      it('advances the size only from the size it has', async () => {
        const created = session();
        await meta.uploads.create(created);
        assert.equal(await meta.uploads.advance(created.id, 0, 100), true);
        assert.equal(await meta.uploads.advance(created.id, 0, 50), false);
        assert.equal((await meta.uploads.get(created.id))?.size, 100);
        assert.equal(await meta.uploads.advance(randomUUID(), 0, 1), false);
        const racers = await Promise.all([meta.uploads.advance(created.id, 100, 200), meta.uploads.advance(created.id, 100, 300)]);
        assert.deepEqual(racers.filter(Boolean), [true]);
      });

      it('finds sessions not touched since a cutoff, and forgets deleted ones', async () => {
        const old = session(new Date(Date.now() - 3_600_000));
        const fresh = session();
        const touched = session(new Date(Date.now() - 3_600_000));
        for (const created of [old, fresh, touched]) await meta.uploads.create(created);
        assert.equal(await meta.uploads.advance(touched.id, 0, 10), true);
        const stale = (await meta.uploads.staleSince(new Date(Date.now() - 60_000))).map((found) => found.id);
        assert.ok(stale.includes(old.id));
        assert.ok(!stale.includes(fresh.id));
        assert.ok(!stale.includes(touched.id), 'advancing touches a session');
        const open = await meta.uploads.count();
        assert.ok(open >= 3, `counts the open sessions (${open})`);
        assert.equal(await meta.uploads.delete(old.id), true);
        assert.equal(await meta.uploads.count(), open - 1);
        assert.equal(await meta.uploads.delete(old.id), false);
        assert.equal(await meta.uploads.get(old.id), undefined);
      });
    });
  });
}

/** Byte order of UTF-8 strings (what OCI listings promise). */
export function compareBytes(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left), Buffer.from(right));
}
