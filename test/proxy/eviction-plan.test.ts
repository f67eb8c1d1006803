import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Digest } from '../../src/oci/digest.ts';
import type { RepositoryName, Tag } from '../../src/oci/names.ts';
import { routedScope } from '../../src/sources/proxy/budget-scopes.ts';
import { imagesOf, leastRecentlyUsed } from '../../src/sources/proxy/eviction-plan.ts';
import { UpstreamRateLimit } from '../../src/sources/proxy/rate-limit.ts';

const d = (character: string) => `sha256:${character.repeat(64)}` as Digest;
const at = (seconds: number) => new Date(seconds * 1000);
const repository = 'up/team/app' as RepositoryName;

describe('eviction plans whole images', () => {
  test('an index takes its children, referrers and cosign tags along; the last use is the latest pull of any of them', () => {
    const contents = {
      tags: [
        { tag: 'v1' as Tag, digest: d('1'), updatedAt: at(10) },
        { tag: `sha256-${'1'.repeat(64)}.sig` as Tag, digest: d('5'), updatedAt: at(11) },
        { tag: 'v2' as Tag, digest: d('6'), updatedAt: at(20) },
      ],
      manifests: [
        { digest: d('1'), size: 10, createdAt: at(10), children: [d('2'), d('3')] },
        { digest: d('2'), size: 10, createdAt: at(10), children: [] },
        { digest: d('3'), size: 10, createdAt: at(10), children: [] },
        { digest: d('4'), size: 10, createdAt: at(12), subject: d('2'), children: [] },
        { digest: d('5'), size: 10, createdAt: at(11), children: [] },
        { digest: d('6'), size: 10, createdAt: at(20), children: [] },
        { digest: d('7'), size: 10, createdAt: at(5), subject: d('9'), children: [] },
      ],
    };
    const images = imagesOf(repository, contents, new Map([[d('3'), at(30)]]));
    assert.deepEqual(
      images.map((image) => ({ root: image.root, members: image.members, tags: image.tags.map((tag) => tag.tag), lastUsed: image.lastUsed })),
      [
        { root: d('1'), members: [d('1'), d('2'), d('3'), d('5'), d('4')], tags: ['v1', `sha256-${'1'.repeat(64)}.sig`], lastUsed: 30_000 },
        { root: d('6'), members: [d('6')], tags: ['v2'], lastUsed: 20_000 },
        { root: d('7'), members: [d('7')], tags: [], lastUsed: 5000 },
      ],
    );
    assert.deepEqual(
      leastRecentlyUsed(images).map((image) => image.root),
      [d('7'), d('6'), d('1')],
    );
  });

  test("a cache's scope leaves out the longer prefixes routed elsewhere", () => {
    const scope = routedScope(['up/'], ['up/', 'up/local/', 'team/']);
    const matches = (name: string) => name.startsWith(scope.prefix) && new RegExp(scope.pattern).test(name);
    assert.equal(matches('up/team/app'), true);
    assert.equal(matches('up/local/app'), false);
    assert.equal(matches('team/app'), false);
    const everything = routedScope([''], ['', 'team/']);
    assert.equal(new RegExp(everything.pattern).test('library/alpine'), true);
    assert.equal(new RegExp(everything.pattern).test('team/app'), false);
  });
});

describe("reading an upstream's rate limit", () => {
  test('Docker Hub headers: near the limit at the reserve; a 429 blocks until Retry-After; an old reading lapses', () => {
    let now = 0;
    const limit = new UpstreamRateLimit(0.1, () => now);
    assert.equal(limit.observe(new Headers({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '11;w=21600' })), 11);
    assert.equal(limit.nearLimit(), false);
    limit.observe(new Headers({ 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '10;w=21600' }));
    assert.equal(limit.nearLimit(), true);
    now += 6 * 60_000;
    assert.equal(limit.nearLimit(), false, 'five minutes without news: ask again');
    assert.equal(limit.observe(new Headers()), undefined);
    limit.refused(30, 1000);
    assert.equal(limit.blocked(), true);
    assert.equal(limit.retryAfterSeconds(), 30);
    now += 29_500;
    assert.equal(limit.retryAfterSeconds(), 1);
    now += 600;
    assert.equal(limit.blocked(), false);
    limit.refused(undefined, 2000);
    assert.equal(limit.retryAfterSeconds(), 2, 'no Retry-After: the failure backoff');
  });

  test('an answer to an earlier request arriving late does not replace a newer reading', () => {
    const limit = new UpstreamRateLimit(0.34, () => 0);
    const headers = (remaining: number) => new Headers({ 'ratelimit-limit': '6;w=21600', 'ratelimit-remaining': `${remaining};w=21600` });
    limit.observe(headers(2), 20);
    assert.equal(limit.nearLimit(), true);
    limit.observe(headers(3), 10);
    assert.equal(limit.nearLimit(), true, 'the request sent at 10 saw the limit before the one sent at 20');
    limit.observe(headers(6), 30);
    assert.equal(limit.nearLimit(), false, 'a later request may see the window reset');
  });
});
