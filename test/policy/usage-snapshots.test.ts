import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RepositoryScope, Usage, UsageIndex } from '../../src/meta/operations-store.ts';
import { repositoryScope } from '../../src/policy/globs.ts';
import { UsageSnapshots } from '../../src/policy/usage-snapshots.ts';

/** A usage index over a fake clock: each sum takes `costMs` of it and reports `stored`. */
function fakeIndex(clock: { now: number }, costMs: number) {
  const state = { stored: 100, sums: 0, costMs, fail: false };
  const index: UsageIndex = {
    usage: async (_scope: RepositoryScope): Promise<Usage> => {
      state.sums++;
      clock.now += state.costMs;
      if (state.fail) throw new Error('database unavailable');
      return { bytes: state.stored, repositories: 1 };
    },
    holds: async () => false,
    occupied: async () => true,
    repositories: async () => [],
  };
  return { index, state };
}

const scope = repositoryScope(['team/**']);

describe('quota usage snapshots', () => {
  it('sum a cheap scope on every check, exactly', async () => {
    const clock = { now: 0 };
    const { index, state } = fakeIndex(clock, 1);
    const sums = new UsageSnapshots(index, { slowMs: 50, maxAgeMs: 1000, now: () => clock.now });
    assert.equal((await sums.usage(scope)).bytes, 100);
    state.stored = 40;
    sums.admitted(scope, 5);
    assert.equal((await sums.usage(scope)).bytes, 40);
    assert.equal(state.sums, 2);
  });

  it('check a slow scope against its last sum plus what was admitted since, summing again in the background when old', async () => {
    const clock = { now: 0 };
    const { index, state } = fakeIndex(clock, 200);
    const sums = new UsageSnapshots(index, { slowMs: 50, maxAgeMs: 1000, now: () => clock.now });
    assert.equal((await sums.usage(scope)).bytes, 100);
    sums.admitted(scope, 30);
    state.stored = 500;
    assert.equal((await sums.usage(scope)).bytes, 130, 'the snapshot plus what was admitted here');
    assert.equal(state.sums, 1, 'no sum while the snapshot is young');
    clock.now += 1000;
    assert.equal((await sums.usage(scope)).bytes, 130, 'an old snapshot still answers at once');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(state.sums, 2, 'and is summed again in the background');
    assert.equal((await sums.usage(scope)).bytes, 500);
  });

  it('go back to exact sums when a slow scope becomes cheap, and keep a snapshot when a sum fails', async () => {
    const clock = { now: 0 };
    const { index, state } = fakeIndex(clock, 200);
    const sums = new UsageSnapshots(index, { slowMs: 50, maxAgeMs: 1000, now: () => clock.now });
    await sums.usage(scope);
    state.fail = true;
    clock.now += 1000;
    assert.equal((await sums.usage(scope)).bytes, 100);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal((await sums.usage(scope)).bytes, 100, 'a failed sum keeps the snapshot');
    state.fail = false;
    state.costMs = 1;
    clock.now += 1000;
    await sums.usage(scope);
    await new Promise((resolve) => setImmediate(resolve));
    state.stored = 7;
    assert.equal((await sums.usage(scope)).bytes, 7, 'exact again');
  });
});
