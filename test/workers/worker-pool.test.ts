import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { newPeerGroup, ThreadPeers } from '../../src/io/peers.ts';
import { startServer, type RunningServer } from '../../src/server.ts';
import { WorkerPool } from '../../src/workers/worker-pool.ts';
import { eventually } from '../helpers/eventually.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('the worker pool', () => {
  let dir: { path: string; remove(): Promise<void> };
  let leader: RunningServer;
  let pool: WorkerPool;
  let peers: ThreadPeers;
  const logged: Record<string, unknown>[] = [];

  before(async () => {
    dir = await tempDir('berth-pool');
    const config: Config = await loadConfig({ env: {}, overrides: { listen: '127.0.0.1:0', dataDir: dir.path, 'log.level': 'silent' } });
    const group = newPeerGroup(2);
    peers = new ThreadPeers(group);
    const logger = pino(
      { level: 'info', base: null },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logged.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    leader = await startServer(config, pino({ level: 'silent' }), peers);
    pool = await WorkerPool.start({ config: { ...config, listen: leader.address }, group, logger, restartDelayMs: 50 });
  });
  after(async () => {
    await pool?.stop();
    await leader?.close();
    peers?.close();
    await dir?.remove();
  });

  it('starts a worker that died again, and logs it', async () => {
    assert.equal((await peers.gather('metrics')).length, 2, 'both workers answer');
    const first = pool.threads.get(1);
    assert.ok(first !== undefined);
    await first.terminate();
    const restarted = await eventually(() => pool.threads.get(1) !== first && pool.threads.get(1) !== undefined && (pool.threads.get(1) as object));
    assert.notEqual(restarted, first);
    await eventually(async () => (await peers.gather('metrics', 500)).length === 2, { what: 'the new worker answering its peers' });
    const died = logged.find((entry) => entry['msg'] === 'a worker stopped unexpectedly; starting it again');
    assert.equal(died?.['worker'], 1);
    assert.equal(died?.['level'], 50, 'logged as an error');
    await eventually(() => logged.some((entry) => entry['msg'] === 'worker started again' && entry['worker'] === 1));
  });

  it('stops every worker, each finishing first', async () => {
    const worker = pool.threads.get(1);
    assert.ok(worker !== undefined);
    const exited = new Promise<number>((resolve) => worker.once('exit', resolve));
    await pool.stop();
    assert.equal(await exited, 0, 'the worker closed its server and stores and ended itself');
    assert.equal(pool.threads.size, 0);
    const deaths = logged.filter((entry) => entry['msg'] === 'a worker stopped unexpectedly; starting it again');
    assert.equal(deaths.length, 1, 'a stop is no death: only the end the first test caused was logged');
  });
});
