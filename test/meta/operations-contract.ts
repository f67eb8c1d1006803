import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ManifestRecord, MetaStore } from '../../src/meta/meta-store.ts';
import type { Batch, OperationsStore } from '../../src/meta/operations-store.ts';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type RepositoryName } from '../../src/oci/names.ts';
import { repositoryScope } from '../../src/policy/globs.ts';

export interface OpenedStores {
  meta: MetaStore;
  operations: OperationsStore;
  close(): Promise<void>;
}

const imageType = 'application/vnd.oci.image.manifest.v1+json';
const indexType = 'application/vnd.oci.image.index.v1+json';
const future = () => new Date(Date.now() + 60_000);
const past = () => new Date(Date.now() - 60_000);

/** A cutoff between what was written before and what is written after (clocks have millisecond steps). */
async function instant(): Promise<Date> {
  await new Promise((resolve) => setTimeout(resolve, 5));
  const now = new Date();
  await new Promise((resolve) => setTimeout(resolve, 5));
  return now;
}

/** Every item of a scan, following cursors (small batches, so paging is exercised). */
async function scanAll<T>(scan: (cursor: string | undefined) => Promise<Batch<T>>): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const batch = await scan(cursor);
    items.push(...batch.items);
    cursor = batch.cursor;
  } while (cursor !== undefined);
  return items;
}

/**
 * The behaviour every OperationsStore promises (src/meta/operations-store.ts),
 * over the MetaStore it extends. Tests share one store and use fresh names.
 */
export function runOperationsStoreContract(label: string, open: () => Promise<OpenedStores>): void {
  describe(`OperationsStore contract: ${label}`, () => {
    let stores: OpenedStores;
    let meta: MetaStore;
    let ops: OperationsStore;
    before(async () => {
      stores = await open();
      meta = stores.meta;
      ops = stores.operations;
    });
    after(() => stores.close());

    const fresh = (base = 'ops'): RepositoryName => parseRepositoryName(`${base}-${randomUUID().slice(0, 8)}`);
    const digest = (): Digest => digestOf(randomBytes(32));
    const record = (mediaType = imageType, extra: Partial<ManifestRecord> = {}): ManifestRecord => {
      const bytes = Buffer.from(`{"schemaVersion":2,"nonce":"${randomUUID()}"}`);
      return { digest: digestOf(bytes), mediaType, bytes, ...extra };
    };
    const unlinkedDigests = async (cutoff: Date) => (await scanAll((cursor) => ops.blobs.unlinked(cutoff, cursor, 2))).map((blob) => blob.digest);

    describe('blobs', () => {
      it('lists blobs no repository links, old enough and not touched since', async () => {
        const repository = fresh();
        const [kept, dropped, touched] = [digest(), digest(), digest()];
        for (const each of [kept, dropped, touched]) await meta.blobs.link(repository, each, 7);
        await meta.blobs.unlink(repository, dropped);
        await meta.blobs.unlink(repository, touched);
        const cutoff = await instant();
        assert.deepEqual(await ops.blobs.touch([touched]), []);
        const listed = await unlinkedDigests(cutoff);
        assert.ok(listed.includes(dropped));
        assert.ok(!listed.includes(kept), 'a linked blob is not a candidate');
        assert.ok(!listed.includes(touched), 'a blob touched since the cutoff is not a candidate');
        assert.ok(!(await unlinkedDigests(past())).includes(dropped), 'a blob newer than the cutoff is not a candidate');
        const sorted = [...listed].sort();
        assert.deepEqual(listed, sorted, 'in digest order');
      });

      it('condemns after re-checking, leaving a tombstone that refuses touches until buried', async () => {
        const repository = fresh();
        const [gone, relinked, orphan, touchedOrphan] = [digest(), digest(), digest(), digest()];
        await meta.blobs.link(repository, gone, 11);
        await meta.blobs.link(repository, relinked, 12);
        await meta.blobs.unlink(repository, gone);
        await meta.blobs.unlink(repository, relinked);
        await meta.blobs.link(fresh(), relinked, 12);
        const cutoff = await instant();
        await ops.blobs.touch([touchedOrphan]);
        const condemned = await ops.blobs.condemn(
          [
            { digest: gone, size: 0 },
            { digest: relinked, size: 0 },
            { digest: orphan, size: 99 },
            { digest: touchedOrphan, size: 5 },
          ],
          cutoff,
        );
        assert.deepEqual(
          condemned.sort((a, b) => a.digest.localeCompare(b.digest)),
          [
            { digest: gone, size: 11 },
            { digest: orphan, size: 99 },
          ].sort((a, b) => a.digest.localeCompare(b.digest)),
        );
        assert.equal(await meta.blobs.storedSize(gone), undefined, 'the row is gone');
        assert.equal(await meta.blobs.storedSize(relinked), 12, 'a linked blob keeps its row');
        assert.deepEqual(await ops.blobs.condemn([{ digest: gone, size: 1 }], future()), [], 'condemned once');
        const known = await ops.blobs.known([gone, orphan, relinked, touchedOrphan]);
        assert.deepEqual([...known].sort(), [gone, orphan, relinked].sort());
        const tombstones = (await ops.blobs.tombstones(10_000)).map((blob) => blob.digest);
        assert.ok(tombstones.includes(gone) && tombstones.includes(orphan));
        assert.deepEqual((await ops.blobs.touch([gone, relinked])).sort(), [gone]);
        await ops.blobs.bury([gone, orphan]);
        assert.deepEqual(await ops.blobs.touch([gone]), []);
        assert.deepEqual(await ops.blobs.known([gone, orphan]), new Set());
      });

      it('keeps a blob whose row is newer than the cutoff', async () => {
        const repository = fresh();
        const young = digest();
        await meta.blobs.link(repository, young, 3);
        await meta.blobs.unlink(repository, young);
        assert.deepEqual(await ops.blobs.condemn([{ digest: young, size: 3 }], past()), []);
        assert.equal(await meta.blobs.storedSize(young), 3);
      });

      it('counts the links of blobs', async () => {
        const [one, two] = [fresh(), fresh()];
        const [shared, single, unlinked] = [digest(), digest(), digest()];
        await meta.blobs.link(one, shared, 5);
        await meta.blobs.link(two, shared, 5);
        await meta.blobs.link(one, single, 6);
        await meta.blobs.link(one, unlinked, 7);
        await meta.blobs.unlink(one, unlinked);
        const counts = await ops.blobs.linkCounts([shared, single, unlinked, digest()]);
        assert.deepEqual(
          [...counts].sort(([a], [b]) => a.localeCompare(b)),
          [
            [shared, { links: 2, size: 5 }],
            [single, { links: 1, size: 6 }],
            [unlinked, { links: 0, size: 7 }],
          ].sort(([a], [b]) => String(a).localeCompare(String(b))),
        );
      });

      it('forgets touches older than a cutoff, a range of digests at a time', async () => {
        const old = digest();
        const young = digest();
        await ops.blobs.touch([old]);
        const cutoff = await instant();
        await ops.blobs.touch([young]);
        const forgotten = await scanAll((cursor) => ops.blobs.forgetTouches(cutoff, cursor, 2));
        assert.ok(forgotten.includes(old));
        assert.ok(!forgotten.includes(young), 'a touch after the cutoff stays');
        assert.ok(!(await scanAll((cursor) => ops.blobs.forgetTouches(past(), cursor, 2))).includes(young));
        assert.ok((await scanAll((cursor) => ops.blobs.forgetTouches(future(), cursor, 2))).includes(young));
        assert.ok(!(await scanAll((cursor) => ops.blobs.forgetTouches(future(), cursor, 2))).includes(old), 'forgotten once');
        const repository = fresh();
        await meta.blobs.link(repository, old, 1);
        await meta.blobs.unlink(repository, old);
        assert.ok((await unlinkedDigests(future())).includes(old), 'no touch protects it any more');
      });
    });

    describe('scans', () => {
      it('read a bounded range of rows per batch, however few of them match', async () => {
        const repository = fresh();
        const linked = Array.from({ length: 20 }, digest);
        for (const each of linked) await meta.blobs.link(repository, each, 3);
        await meta.manifests.put(repository, record(), { blobs: linked, children: [] }, [parseTag('v0')]);
        for (let index = 1; index < 20; index++) await meta.manifests.put(repository, record(), { blobs: [], children: [] }, [parseTag(`v${index}`)]);
        const cutoff = future();
        // 20 rows that never match, each scan 2 rows a batch: at least 10 batches,
        // where a scan that read on until it found 2 matches would need few.
        const batchCount = async <T>(scan: (cursor: string | undefined) => Promise<Batch<T>>) => {
          let count = 0;
          let cursor: string | undefined;
          do {
            cursor = (await scan(cursor)).cursor;
            count++;
          } while (cursor !== undefined);
          return count;
        };
        assert.ok((await batchCount((cursor) => ops.blobs.unlinked(cutoff, cursor, 2))) >= 10, 'blob scan');
        assert.ok((await batchCount((cursor) => ops.namespace.unreferencedLinks(cutoff, cursor, 2))) >= 10, 'link scan');
        assert.ok((await batchCount((cursor) => ops.namespace.unreachableManifests(cutoff, cursor, 2))) >= 10, 'manifest scan');
      });
    });

    describe('namespace', () => {
      it('finds and removes links no manifest references, re-checking each', async () => {
        const repository = fresh();
        const [layer, loose, late] = [digest(), digest(), digest()];
        for (const each of [layer, loose, late]) await meta.blobs.link(repository, each, 1);
        await meta.manifests.put(repository, record(), { blobs: [layer], children: [] }, [parseTag('v1')]);
        const links = (await scanAll((cursor) => ops.namespace.unreferencedLinks(future(), cursor, 1))).filter((link) => link.repository === repository);
        assert.deepEqual(links.map((link) => link.digest).sort(), [loose, late].sort());
        assert.deepEqual(await scanAll((cursor) => ops.namespace.unreferencedLinks(past(), cursor, 10)).then((all) => all.filter((link) => link.repository === repository)), []);
        await meta.manifests.put(repository, record(), { blobs: [late], children: [] }, []);
        const removed = await ops.namespace.unlink(links, future());
        assert.deepEqual(removed, [{ repository, digest: loose }]);
        assert.equal(await meta.blobs.linkedSize(repository, loose), undefined);
        assert.equal(await meta.blobs.linkedSize(repository, late), 1);
      });

      it('finds manifests no tag, index or subject makes reachable, and deletes them after a re-check', async () => {
        const repository = fresh();
        const tagged = record();
        const child = record();
        const index = record(indexType);
        const orphan = record();
        const subject = record();
        const referrer = record(imageType, { subject: subject.digest });
        const strayReferrer = record(imageType, { subject: digest() });
        await meta.manifests.put(repository, tagged, { blobs: [], children: [] }, [parseTag('latest')]);
        await meta.manifests.put(repository, child, { blobs: [], children: [] }, []);
        await meta.manifests.put(repository, index, { blobs: [], children: [child.digest] }, [parseTag('multi')]);
        for (const each of [orphan, subject, referrer, strayReferrer]) await meta.manifests.put(repository, each, { blobs: [], children: [] }, []);
        const found = (await scanAll((cursor) => ops.namespace.unreachableManifests(future(), cursor, 1))).filter((key) => key.repository === repository).map((key) => key.digest);
        assert.deepEqual(found.sort(), [orphan.digest, subject.digest, strayReferrer.digest].sort());
        assert.equal(await ops.namespace.deleteUnreachable({ repository, digest: orphan.digest }, past()), undefined, 'too new');
        assert.equal(await ops.namespace.deleteUnreachable({ repository, digest: orphan.digest }, future()), orphan.bytes.byteLength);
        await meta.manifests.put(repository, strayReferrer, { blobs: [], children: [] }, [parseTag('rescued')]);
        assert.equal(await ops.namespace.deleteUnreachable({ repository, digest: strayReferrer.digest }, future()), undefined, 'tagged since');
        assert.equal(await meta.manifests.get(repository, { kind: 'digest', digest: orphan.digest }), undefined);
        assert.equal(await ops.namespace.deleteUnreachable({ repository, digest: subject.digest }, future()), subject.bytes.byteLength);
        const after = (await scanAll((cursor) => ops.namespace.unreachableManifests(future(), cursor, 10))).filter((key) => key.repository === repository).map((key) => key.digest);
        assert.deepEqual(after, [referrer.digest], 'a referrer whose subject went is unreachable next');
      });

      it('deletes a tag only while it is unchanged', async () => {
        const repository = fresh();
        const [one, two] = [record(), record()];
        await meta.manifests.put(repository, one, { blobs: [], children: [] }, [parseTag('a'), parseTag('b')]);
        const planned = future();
        await meta.manifests.put(repository, two, { blobs: [], children: [] }, [parseTag('b')]);
        assert.equal(await ops.namespace.deleteTag(repository, parseTag('b'), one.digest, planned), false, 'moved since');
        assert.equal(await ops.namespace.deleteTag(repository, parseTag('a'), one.digest, past()), false, 'pushed after the plan');
        assert.equal(await ops.namespace.deleteTag(repository, parseTag('a'), one.digest, planned), true);
        assert.deepEqual(await meta.tags.list(repository, {}), ['b']);
      });

      it('describes a repository: tags with times, manifests with children and subjects', async () => {
        const repository = fresh();
        const child = record();
        const index = record(indexType);
        const referrer = record(imageType, { subject: child.digest });
        await meta.manifests.put(repository, child, { blobs: [], children: [] }, []);
        await meta.manifests.put(repository, index, { blobs: [], children: [child.digest] }, [parseTag('v2'), parseTag('v1')]);
        await meta.manifests.put(repository, referrer, { blobs: [], children: [] }, []);
        const contents = await ops.namespace.contents(repository);
        assert.deepEqual(
          contents.tags.map((tag) => [tag.tag, tag.digest]),
          [
            ['v1', index.digest],
            ['v2', index.digest],
          ],
        );
        assert.ok(contents.tags.every((tag) => tag.updatedAt instanceof Date && Math.abs(tag.updatedAt.getTime() - Date.now()) < 60_000));
        const byDigest = new Map(contents.manifests.map((manifest) => [manifest.digest, manifest]));
        assert.deepEqual(byDigest.get(index.digest)?.children, [child.digest]);
        assert.equal(byDigest.get(referrer.digest)?.subject, child.digest);
        assert.equal(byDigest.get(child.digest)?.size, child.bytes.byteLength);
        assert.deepEqual(await ops.namespace.contents(fresh()), { tags: [], manifests: [] });
      });
    });

    describe('usage', () => {
      it('sums distinct blobs and manifests of the repositories a scope matches', async () => {
        const team = `team${randomUUID().slice(0, 6)}`;
        const [app, lib, other] = [`${team}/app`, `${team}/lib/core`, `${team}x/app`].map(parseRepositoryName) as [RepositoryName, RepositoryName, RepositoryName];
        const shared = digest();
        await meta.blobs.link(app, shared, 1000);
        await meta.blobs.link(lib, shared, 1000);
        await meta.blobs.link(lib, digest(), 10);
        const otherBlob = digest();
        await meta.blobs.link(other, otherBlob, 5000);
        const manifest = record();
        await meta.manifests.put(app, manifest, { blobs: [shared], children: [] }, [parseTag('v1')]);
        const size = manifest.bytes.byteLength;
        assert.deepEqual(await ops.usage.usage(repositoryScope([`${team}/**`])), { bytes: 1010 + size, repositories: 2 });
        assert.deepEqual(await ops.usage.usage(repositoryScope([`${team}/*`])), { bytes: 1000 + size, repositories: 1 });
        assert.deepEqual(await ops.usage.usage(repositoryScope([`${team}*/app`])), { bytes: 6000 + size, repositories: 2 });
        assert.deepEqual(await ops.usage.usage(repositoryScope([`${team}/nothing/**`])), { bytes: 0, repositories: 0 });
        assert.equal(await ops.usage.holds(repositoryScope([`${team}/**`]), shared), true);
        assert.equal(await ops.usage.holds(repositoryScope([`${team}x/**`]), shared), false);
        assert.deepEqual(await ops.usage.repositories(repositoryScope([`${team}/**`, `${team}x/*`])), [app, lib, other]);
        assert.equal(await ops.usage.occupied(app), true);
        await meta.blobs.unlink(other, otherBlob);
        assert.equal(await ops.usage.occupied(other), false, 'an emptied repository holds nothing');
      });
    });

    describe('leases', () => {
      it('has one holder at a time, and is free again once released', async () => {
        const name = `test-${randomUUID()}`;
        const first = await ops.leases.acquire(name);
        assert.ok(first !== undefined);
        assert.equal(await ops.leases.acquire(name), undefined);
        const other = await ops.leases.acquire(`${name}-other`);
        assert.ok(other !== undefined, 'names are independent');
        await first.release();
        const second = await ops.leases.acquire(name);
        assert.ok(second !== undefined);
        assert.equal(second.signal.aborted, false);
        await second.release();
        await other.release();
      });
    });

    describe('event queue', () => {
      it('keeps events per webhook in order, counts failed attempts, removes delivered ones', async () => {
        const hook = `hook-${randomUUID()}`;
        await ops.events.enqueue([1, 2, 3].map((n) => ({ webhook: hook, body: `{"n":${n}}` })));
        await ops.events.enqueue([{ webhook: `${hook}-b`, body: '{"n":9}' }]);
        const head = await ops.events.head(hook, 2);
        assert.deepEqual(
          head.map((event) => event.body),
          ['{"n":1}', '{"n":2}'],
        );
        assert.ok(head.every((event) => event.attempts === 0 && event.webhook === hook));
        const later = new Date(Date.now() + 5000);
        await ops.events.postpone([head[0]?.id as number], later, 'HTTP 503');
        const again = await ops.events.head(hook, 10);
        assert.equal(again[0]?.attempts, 1);
        assert.equal(again[0]?.nextAttemptAt.getTime(), later.getTime());
        assert.equal((await ops.events.backlog()).get(hook), 3);
        await ops.events.remove(again.slice(0, 2).map((event) => event.id));
        assert.deepEqual(
          (await ops.events.head(hook, 10)).map((event) => event.body),
          ['{"n":3}'],
        );
        assert.equal((await ops.events.backlog()).get(`${hook}-b`), 1);
      });

      it('queues a row whose first attempt failed before it was queued as that attempt: counted, and retried not before its time', async () => {
        const hook = `hook-${randomUUID()}`;
        const retryAt = new Date(Date.now() + 7000);
        await ops.events.enqueue([
          { webhook: hook, body: '{"n":1}', failedOnce: { retryAt, error: 'HTTP 503' } },
          { webhook: hook, body: '{"n":2}' },
        ]);
        const [failed, behind] = await ops.events.head(hook, 10);
        assert.equal(failed?.body, '{"n":1}');
        assert.equal(failed?.attempts, 1);
        assert.equal(failed?.nextAttemptAt.getTime(), retryAt.getTime());
        assert.equal(behind?.attempts, 0);
        assert.ok((behind?.nextAttemptAt.getTime() ?? Infinity) <= Date.now());
        await ops.events.remove([failed?.id as number, behind?.id as number]);
      });

      it('counts the events of a row written for a group (a JSON array, one event per line) in the backlog', async () => {
        const hook = `hook-${randomUUID()}`;
        await ops.events.enqueue([
          { webhook: hook, body: '{"n":1}' },
          { webhook: hook, body: '[{"n":2,"s":"a\\nb"},\n{"n":3},\n{"n":4}]' },
        ]);
        assert.equal((await ops.events.backlog()).get(hook), 4, 'an escaped line break inside an event is no separator');
        assert.deepEqual(
          (await ops.events.head(hook, 10)).map((event) => event.body),
          ['{"n":1}', '[{"n":2,"s":"a\\nb"},\n{"n":3},\n{"n":4}]'],
        );
      });
    });

    describe('pull log', () => {
      it('keeps the latest pull per manifest and forgets old ones', async () => {
        const repository = fresh();
        const [one, two] = [digest(), digest()];
        const t0 = new Date(Date.now() - 10_000);
        const t1 = new Date(Date.now() - 5_000);
        await ops.pulls.record([
          { repository, digest: one, at: t1 },
          { repository, digest: one, at: t0 },
          { repository, digest: two, at: t0 },
        ]);
        await ops.pulls.record([{ repository, digest: one, at: t0 }]);
        const pulls = await ops.pulls.lastPulls(repository);
        assert.equal(pulls.get(one)?.getTime(), t1.getTime());
        assert.equal(pulls.get(two)?.getTime(), t0.getTime());
        assert.ok((await ops.pulls.prune(new Date(t0.getTime() + 1))) >= 1);
        assert.deepEqual([...(await ops.pulls.lastPulls(repository)).keys()], [one]);
      });
    });
  });
}
