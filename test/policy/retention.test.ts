import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RepositoryContents } from '../../src/meta/operations-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import type { Tag } from '../../src/oci/names.ts';
import { tagMatcher } from '../../src/policy/globs.ts';
import { planRetention, type RetentionRule } from '../../src/policy/retention.ts';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry } from '../helpers/registry.ts';

const now = new Date('2030-06-01T00:00:00Z');
const day = 86_400_000;
const ago = (days: number) => new Date(now.getTime() - days * day);
const d = (name: string) => `sha256:${name.padEnd(64, '0')}` as Digest;

/** A repository: tags (name → manifest, pushed days ago) and manifests (created days ago, children, subject). */
function repository(tags: Record<string, [string, number]>, manifests: Record<string, { age: number; children?: string[]; subject?: string }>): RepositoryContents {
  return {
    tags: Object.entries(tags).map(([tag, [manifest, age]]) => ({ tag: tag as Tag, digest: d(manifest), updatedAt: ago(age) })),
    manifests: Object.entries(manifests).map(([name, { age, children, subject }]) => ({
      digest: d(name),
      size: 100,
      createdAt: ago(age),
      children: (children ?? []).map(d),
      ...(subject === undefined ? {} : { subject: d(subject) }),
    })),
  };
}

const rule = (overrides: Partial<Omit<RetentionRule, 'keepTags'>> & { keepTags?: string[] } = {}): RetentionRule => ({
  ...overrides,
  keepTags: tagMatcher(overrides.keepTags ?? []),
  immutable: overrides.immutable ?? (() => false),
});

const four = repository({ v1: ['a', 40], v2: ['b', 30], v3: ['c', 20], v4: ['d', 10] }, { a: { age: 40 }, b: { age: 30 }, c: { age: 20 }, d: { age: 10 } });

const cases: { name: string; rule: RetentionRule; contents: RepositoryContents; pulls?: Record<string, number>; tags: string[]; manifests: string[] }[] = [
  { name: 'no keepLatest: no tag goes', rule: rule(), contents: four, tags: [], manifests: [] },
  { name: 'keepLatest: the oldest tags go, with the manifests only they named', rule: rule({ keepLatest: 2 }), contents: four, tags: ['v2', 'v1'], manifests: ['a', 'b'] },
  { name: 'keepLatest 0 with keepTags: only matching tags stay', rule: rule({ keepLatest: 0, keepTags: ['v1', 'v4'] }), contents: four, tags: ['v3', 'v2'], manifests: ['b', 'c'] },
  { name: 'immutable tags stay', rule: rule({ keepLatest: 1, immutable: (tag) => tag === 'v1' }), contents: four, tags: ['v3', 'v2'], manifests: ['b', 'c'] },
  {
    name: 'tags pulled recently stay',
    rule: rule({ keepLatest: 1, keepPulledWithin: 7 * day }),
    contents: four,
    pulls: { a: 2, b: 60 },
    tags: ['v3', 'v2'],
    manifests: ['b', 'c'],
  },
  {
    name: 'a manifest another kept tag names stays',
    rule: rule({ keepLatest: 1 }),
    contents: repository({ old: ['a', 30], new: ['a', 1] }, { a: { age: 30 } }),
    tags: ['old'],
    manifests: [],
  },
  {
    name: 'untagged manifests older than the limit go; younger ones stay',
    rule: rule({ untaggedOlderThan: 14 * day }),
    contents: repository({ v1: ['a', 1] }, { a: { age: 1 }, old: { age: 30 }, young: { age: 3 } }),
    tags: [],
    manifests: ['old'],
  },
  {
    name: 'untagged children of a kept index, and referrers of a kept subject, stay',
    rule: rule({ untaggedOlderThan: 14 * day }),
    contents: repository({ v1: ['index', 30] }, { index: { age: 30, children: ['amd', 'arm'] }, amd: { age: 30 }, arm: { age: 30 }, sig: { age: 30, subject: 'index' } }),
    tags: [],
    manifests: [],
  },
  {
    name: 'a deleted index takes its children and referrers, index first, subject before referrer',
    rule: rule({ keepLatest: 1 }),
    contents: repository(
      { v1: ['index', 30], v2: ['b', 1] },
      { index: { age: 30, children: ['amd', 'arm'] }, amd: { age: 30 }, arm: { age: 30 }, sig: { age: 30, subject: 'index' }, b: { age: 1 } },
    ),
    tags: ['v1'],
    manifests: ['index', 'amd', 'arm', 'sig'],
  },
  {
    name: 'a child also listed by a kept index stays',
    rule: rule({ keepLatest: 1 }),
    contents: repository({ v1: ['i1', 30], v2: ['i2', 1] }, { i1: { age: 30, children: ['x', 'y'] }, i2: { age: 1, children: ['y'] }, x: { age: 30 }, y: { age: 30 } }),
    tags: ['v1'],
    manifests: ['i1', 'x'],
  },
  {
    name: 'a manifest pulled recently stays even untagged and old',
    rule: rule({ untaggedOlderThan: 7 * day, keepPulledWithin: 7 * day }),
    contents: repository({}, { old: { age: 30 } }),
    pulls: { old: 1 },
    tags: [],
    manifests: [],
  },
];

describe('retention plans', () => {
  for (const { name, rule: given, contents, pulls, tags, manifests } of cases) {
    it(name, () => {
      const pulled = new Map(Object.entries(pulls ?? {}).map(([manifest, days]) => [d(manifest), ago(days)]));
      const plan = planRetention(given, contents, pulled, now);
      assert.deepEqual(
        plan.tags.map((tag) => tag.tag),
        tags,
      );
      assert.deepEqual(
        plan.manifests.map((manifest) => manifest.digest),
        manifests.map(d),
      );
    });
  }
});

describe('retention on a registry', () => {
  it('lists in a dry run, deletes tags and manifests for real, keeps what was pulled, and GC frees the layers', async () => {
    const registry = await startTestRegistry({
      'gc.interval': 0,
      'gc.gracePeriod': 0,
      retention: { policies: [{ repositories: ['ci/**'], keepLatest: 1, keepTags: ['release-*'], keepPulledWithin: '1d' }] },
    });
    try {
      const images = Array.from({ length: 4 }, () => randomImage({ layers: 1 }));
      const tags = ['build-1', 'release-1', 'build-2', 'build-3'];
      for (const [index, image] of images.entries()) {
        await pushImage(registry.url, 'ci/app', tags[index] as string, image);
        await sleep(5);
      }
      await pushImage(registry.url, 'other/app', 'build-1', images[0] as never);
      const pulled = await call(registry.url, 'GET', '/v2/ci/app/manifests/build-2', { headers: { accept: images[2]?.manifest.mediaType ?? '' } });
      assert.equal(pulled.status, 200);
      const { operations } = registry.server.registry;
      await operations.pulls?.flush();

      const dry = await operations.applyRetention({ dryRun: true });
      assert.deepEqual(
        dry?.tags.map((tag) => `${tag.repository}:${tag.tag}`),
        ['ci/app:build-1'],
      );
      assert.deepEqual(
        dry?.manifests.map((manifest) => manifest.digest),
        [images[0]?.manifest.digest],
      );
      assert.equal((await call(registry.url, 'GET', '/v2/ci/app/tags/list')).json<{ tags: string[] }>().tags.length, 4, 'a dry run deletes nothing');

      const report = await operations.applyRetention({ dryRun: false });
      assert.equal(report?.repositories, 1);
      assert.deepEqual((await call(registry.url, 'GET', '/v2/ci/app/tags/list')).json<{ tags: string[] }>().tags, ['build-2', 'build-3', 'release-1']);
      assert.equal((await call(registry.url, 'GET', `/v2/ci/app/manifests/${images[0]?.manifest.digest}`)).status, 404);
      assert.equal((await call(registry.url, 'GET', '/v2/other/app/manifests/build-1')).status, 200, 'other repositories are not governed');

      await sleep(5);
      const gc = await operations.collect();
      assert.equal(gc?.linksRemoved, 2, "the deleted image's config and layer are unlinked from ci/app");
      assert.equal(gc?.blobsDeleted, 0, 'other/app still holds them');
      const metrics = await (await call(registry.url, 'GET', '/metrics')).text;
      assert.match(metrics, /^berth_retention_deleted_total\{kind="tag"\} 1$/m);
      assert.match(metrics, /^berth_retention_deleted_total\{kind="manifest"\} 1$/m);
    } finally {
      await registry.close();
    }
  });
});
