import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { type Logger, pino } from 'pino';
import type { Config } from '../../src/config/schema.ts';
import { newPeerGroup } from '../../src/io/peers.ts';
import { WorkerPool } from '../../src/workers/worker-pool.ts';
import { eventually } from '../helpers/eventually.ts';

function capture(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info', base: null },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { logger, lines };
}

const standIn = new URL('./stand-in-worker.ts', import.meta.url);

describe('supervising workers', () => {
  it('a worker whose code throws is logged with the error and started again', async () => {
    const { logger, lines } = capture();
    const pool = await WorkerPool.start({ config: { failure: 'throw' } as unknown as Config, group: newPeerGroup(2), logger, restartDelayMs: 20, script: standIn });
    try {
      await eventually(() => lines.filter((line) => line['msg'] === 'worker started again').length >= 1, { what: 'a restart' });
      const failed = lines.find((line) => line['msg'] === 'a worker failed');
      assert.match(String((failed?.['err'] as { message?: string } | undefined)?.message), /the stand-in failed/);
      const died = lines.find((line) => line['msg'] === 'a worker stopped unexpectedly; starting it again');
      assert.equal(died?.['worker'], 1);
      assert.equal(died?.['code'], 1);
    } finally {
      await pool.stop();
    }
  });

  it('a worker whose event loop is blocked is ended and started again, waiting longer each time it fails young', async () => {
    const { logger, lines } = capture();
    const pool = await WorkerPool.start({
      config: { failure: 'hang' } as unknown as Config,
      group: newPeerGroup(2),
      logger,
      restartDelayMs: 20,
      stuckAfterMs: 300,
      script: standIn,
    });
    try {
      await eventually(() => lines.filter((line) => line['msg'] === 'worker started again').length >= 2, { what: 'two restarts' });
      // Stopped while blocked.
      await new Promise((resolve) => setTimeout(resolve, 250));
      const stuck = lines.filter((line) => line['msg'] === 'a worker stopped answering (its event loop is blocked); ending it');
      assert.ok(stuck.length >= 2);
      assert.ok((stuck[0]?.['silentMs'] as number) > 300);
      const delays = lines.filter((line) => line['msg'] === 'a worker stopped unexpectedly; starting it again').map((line) => line['restartInMs']);
      assert.deepEqual(delays.slice(0, 2), [20, 40]);
    } finally {
      await pool.stop();
    }
    assert.equal(pool.threads.size, 0, 'a stop ends even a blocked worker');
  });
});
