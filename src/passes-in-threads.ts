import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Config } from './config/schema.ts';
import type { GcReport } from './gc/collector.ts';
import type { ScheduledPasses } from './ops/operations.ts';
import type { RetentionReport } from './policy/retention.ts';

export type PassTask = { task: 'gc' } | { task: 'retention'; dryRun: boolean };

interface PassAnswer<T> {
  report?: T;
  error?: string;
}

/**
 * Scheduled garbage collection and retention for a registry on the embedded
 * store: each pass runs in a worker thread over stores of its own (its own
 * SQLite connection, the same blob directory), as `berth gc` and
 * `berth retention` run beside a server, so a pass's queries and loops over
 * millions of rows never hold the thread that serves requests. A stopped
 * server ends the thread; a pass cut short is safe (tombstones, re-checks).
 */
export function passesInThreads(config: Config): ScheduledPasses {
  return {
    collect: (signal) => inThread<GcReport>(config, { task: 'gc' }, signal),
    retention: (dryRun, signal) => inThread<RetentionReport>(config, { task: 'retention', dryRun }, signal),
  };
}

async function inThread<T>(config: Config, task: PassTask, signal: AbortSignal): Promise<T | undefined> {
  signal.throwIfAborted();
  const worker = new Worker(new URL('./pass-thread.ts', import.meta.url), { workerData: { config, ...task } });
  const stop = () => void worker.terminate();
  signal.addEventListener('abort', stop, { once: true });
  try {
    const answered = once(worker, 'message') as Promise<[PassAnswer<T>]>;
    const exited = once(worker, 'exit').then(([code]) => {
      throw signal.aborted ? signal.reason : new Error(`the ${task.task} thread exited with code ${String(code)} before reporting`);
    });
    const [answer] = await Promise.race([answered, exited]);
    if (answer.error !== undefined) throw new Error(answer.error);
    return answer.report;
  } finally {
    signal.removeEventListener('abort', stop);
    await worker.terminate();
  }
}
