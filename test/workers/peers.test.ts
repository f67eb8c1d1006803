import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { alone, newPeerGroup, ThreadPeers } from '../../src/io/peers.ts';
import { eventually } from '../helpers/eventually.ts';

describe('peers: workers of one process telling each other things', () => {
  it('a channel reaches every other worker of the group and no other group', async () => {
    const group = newPeerGroup(3);
    const [leader, one, two] = [0, 1, 2].map((worker) => new ThreadPeers({ ...group, worker }, 20)) as [ThreadPeers, ThreadPeers, ThreadPeers];
    const stranger = new ThreadPeers({ ...newPeerGroup(2), worker: 1 }, 20);
    try {
      const heard: string[] = [];
      one.channel<string>('news').onMessage((message) => heard.push(`one:${message}`));
      two.channel<string>('news').onMessage((message) => heard.push(`two:${message}`));
      leader.channel<string>('news').onMessage((message) => heard.push(`leader:${message}`));
      stranger.channel<string>('news').onMessage((message) => heard.push(`stranger:${message}`));
      leader.channel<string>('news').post('hello');
      await eventually(() => heard.length === 2);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.deepEqual(heard.sort(), ['one:hello', 'two:hello'], 'the sender and other groups hear nothing');
    } finally {
      for (const peers of [leader, one, two, stranger]) peers.close();
    }
  });

  it('gather asks every worker, its own answer first, and leaves out one that does not answer in time', async () => {
    const group = newPeerGroup(3);
    const [leader, one, two] = [0, 1, 2].map((worker) => new ThreadPeers({ ...group, worker }, 20)) as [ThreadPeers, ThreadPeers, ThreadPeers];
    try {
      leader.answer('who', () => 'leader');
      one.answer('who', async () => 'one');
      two.answer('who', () => new Promise<string>((resolve) => setTimeout(() => resolve('two, late'), 400)));
      assert.deepEqual(await one.gather('who', 200), ['one', 'leader']);
      assert.deepEqual(await one.gather('who', 1000), ['one', 'leader', 'two, late']);
      const solo = alone();
      solo.answer('who', () => 'only');
      assert.deepEqual(await solo.gather('who'), ['only']);
    } finally {
      for (const peers of [leader, one, two]) peers.close();
    }
  });

  it("askLeader takes the leader's answer without waiting for workers that have none", async () => {
    const group = newPeerGroup(3);
    const [leader, one, two] = [0, 1, 2].map((worker) => new ThreadPeers({ ...group, worker }, 20)) as [ThreadPeers, ThreadPeers, ThreadPeers];
    try {
      leader.answer('scan', async () => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        return "the leader's scan";
      });
      const started = Date.now();
      assert.equal(await two.askLeader('scan', 5000), "the leader's scan");
      assert.ok(Date.now() - started < 2000, 'answered when the leader did, not at the timeout');
      assert.equal(await one.askLeader('nobody answers this', 100), undefined);
      assert.equal(await leader.askLeader('scan'), "the leader's scan");
    } finally {
      for (const peers of [leader, one, two]) peers.close();
    }
  });

  it("the others notice when the leader's heartbeat stops", async () => {
    const group = newPeerGroup(2);
    const leader = new ThreadPeers({ ...group, worker: 0 }, 20);
    const follower = new ThreadPeers({ ...group, worker: 1 }, 20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      await eventually(() => follower.leaderSilentMs() < 60, { what: 'a heartbeat every 20 ms' });
      assert.equal(leader.leaderSilentMs(), 0);
      leader.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(follower.leaderSilentMs() >= 150, 'no heartbeat since the leader closed');
    } finally {
      follower.close();
    }
  });
});
