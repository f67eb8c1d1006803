import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BrowseIndex, RepositoryQuery } from '../../src/meta/browse-index.ts';
import type { MetaStore } from '../../src/meta/meta-store.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { parseRepositoryName, parseTag, type RepositoryName } from '../../src/oci/names.ts';

export interface OpenedBrowse {
  meta: MetaStore;
  browse: BrowseIndex;
  close(): Promise<void>;
}

const imageType = 'application/vnd.oci.image.manifest.v1+json';

/** Pushes one image of `blobSizes` into `repository` under `tags`; returns the manifest's digest. */
async function push(meta: MetaStore, repository: string, tags: string[], blobSizes: number[], seed = repository): Promise<string> {
  const name = parseRepositoryName(repository);
  const blobs = [];
  for (const [index, size] of blobSizes.entries()) {
    const digest = digestOf(Buffer.from(`${seed}-blob-${index}-${size}`));
    await meta.blobs.link(name, digest, size);
    blobs.push(digest);
  }
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, seed, blobs }));
  const digest = digestOf(bytes);
  await meta.manifests.put(name, { digest, mediaType: imageType, bytes }, { blobs, children: [] }, tags.map(parseTag));
  return digest;
}

/** Every row a query returns, page by page through cursors. */
async function all(browse: BrowseIndex, query: Omit<RepositoryQuery, 'limit' | 'after'>, limit = 2): Promise<string[]> {
  const names: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await browse.repositories({ ...query, limit, ...(after === undefined ? {} : { after }) });
    names.push(...page.map((row) => row.name));
    if (page.length < limit) return names;
    after = page[page.length - 1]?.cursor;
  }
}

export function runBrowseContract(label: string, open: () => Promise<OpenedBrowse>): void {
  describe(`BrowseIndex contract (${label})`, () => {
    it('keeps tag counts, distinct blob bytes and last push as content comes and goes', async () => {
      const { meta, browse, close } = await open();
      try {
        const name = parseRepositoryName('team/app');
        const before = Date.now();
        const first = await push(meta, name, ['1.0', 'latest'], [100, 20]);
        let summary = await browse.summary(name);
        assert.equal(summary?.tags, 2);
        assert.equal(summary?.bytes, 120);
        assert.ok((summary?.pushedAt?.getTime() ?? 0) >= before - 1000);
        // The same blobs again (another manifest sharing them) count once.
        await push(meta, name, ['1.1'], [100, 20], name);
        await push(meta, name, ['2.0'], [5], 'other');
        summary = await browse.summary(name);
        assert.equal(summary?.tags, 4);
        assert.equal(summary?.bytes, 125);
        await meta.tags.delete(name, parseTag('1.0'));
        await meta.blobs.unlink(name, digestOf(Buffer.from('other-blob-0-5')));
        summary = await browse.summary(name);
        assert.equal(summary?.tags, 3);
        assert.equal(summary?.bytes, 120);
        const times = await browse.tagTimes(name, [parseTag('latest'), parseTag('1.0'), parseTag('2.0')]);
        assert.deepEqual([...times.keys()].sort(), ['2.0', 'latest']);
        assert.ok(first.startsWith('sha256:'));
        // A repository whose last manifest is gone is not listed.
        const lone = parseRepositoryName('lone/one');
        const digest = await push(meta, lone, [], [7]);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'lone' }), ['lone/one']);
        await meta.manifests.delete(lone, digest as never);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'lone' }), []);
        assert.equal(await browse.summary(lone), undefined);
      } finally {
        await close();
      }
    });

    it('searches by substring and prefix and pages every order through cursors', async () => {
      const { meta, browse, close } = await open();
      try {
        const repositories: [string, number][] = [
          ['alpha/web', 300],
          ['beta/web-api', 100],
          ['beta/worker', 200],
          ['gamma/db', 100],
          ['webhooks', 50],
        ];
        for (const [name, size] of repositories) {
          await push(meta, name, ['latest'], [size]);
          await new Promise((resolve) => setTimeout(resolve, 3));
        }
        assert.deepEqual(await all(browse, { sort: 'name' }), ['alpha/web', 'beta/web-api', 'beta/worker', 'gamma/db', 'webhooks']);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'web' }), ['alpha/web', 'beta/web-api', 'webhooks']);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'b-a' }), ['beta/web-api']);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'w' }), ['alpha/web', 'beta/web-api', 'beta/worker', 'webhooks']);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'web_' }), []);
        assert.deepEqual(await all(browse, { sort: 'name', search: 'beta/', match: 'prefix' }), ['beta/web-api', 'beta/worker']);
        assert.deepEqual(await all(browse, { sort: 'pushed' }), ['webhooks', 'gamma/db', 'beta/worker', 'beta/web-api', 'alpha/web']);
        // Equal sizes keep a stable order across pages.
        const bySize = await all(browse, { sort: 'size' }, 1);
        assert.deepEqual(bySize.slice(0, 2), ['alpha/web', 'beta/worker']);
        assert.deepEqual(new Set(bySize.slice(2, 4)), new Set(['beta/web-api', 'gamma/db']));
        assert.equal(bySize[4], 'webhooks');
        assert.deepEqual(await all(browse, { sort: 'size', search: 'web' }, 1), ['alpha/web', 'beta/web-api', 'webhooks']);
        // Prefix ranges bound what is read (a viewer's visible part); '' is everything.
        assert.deepEqual(await all(browse, { sort: 'name', within: ['beta/', 'webhooks'] }), ['beta/web-api', 'beta/worker', 'webhooks']);
        assert.deepEqual(await all(browse, { sort: 'size', search: 'web', within: ['beta/'] }), ['beta/web-api']);
        assert.deepEqual(await all(browse, { sort: 'name', within: [] }), []);
        assert.equal((await all(browse, { sort: 'pushed', within: ['', 'beta/'] })).length, 5);
        const names: RepositoryName[] = (await browse.repositories({ sort: 'name', limit: 10 })).map((row) => row.name);
        assert.equal(names.length, 5);
      } finally {
        await close();
      }
    });
  });
}
