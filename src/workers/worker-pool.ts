import { Worker } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import type { PeerIdentity } from '../io/peers.ts';
import type { Logger } from '../log.ts';

/** What the leader tells a worker thread. */
export type ToWorker = { type: 'stop' } | { type: 'ping' };
/** What a worker thread tells the leader. */
export type ToLeader = { type: 'ready' } | { type: 'stopped' } | { type: 'pong' } | { type: 'failed'; message: string };

export interface WorkerPoolOptions {
  /** The configuration every worker serves, `listen` set to the port the leader bound. */
  config: Config;
  /** The leader's peer group (worker 0); workers 1 … count-1 join it. */
  group: PeerIdentity;
  logger: Logger;
  /** The first restart of a worker that died waits this long, doubling while it keeps dying young. */
  restartDelayMs?: number;
  /** A worker whose event loop has not answered a ping for this long is stuck: it is ended and started again (default 30 s). */
  stuckAfterMs?: number;
  /** The worker's module (tests give a stand-in). */
  script?: URL;
}

/** A worker that lived at least this long before dying starts again after the first delay. */
const settledMs = 30_000;
const maxRestartDelayMs = 30_000;

interface Slot {
  worker: Worker | undefined;
  startedAt: number;
  delayMs: number;
  restart: NodeJS.Timeout | undefined;
  /** When the worker last answered a ping (or became ready). */
  answeredAt: number;
}

/**
 * The threads that serve beside the leader (worker 0, the main thread):
 * started once the leader listens, restarted when one dies (logged, with a
 * growing delay while it keeps dying young), stopped together on SIGTERM,
 * each finishing its requests in flight.
 */
export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #slots = new Map<number, Slot>();
  readonly #watchdog: NodeJS.Timeout;
  #stopping = false;

  private constructor(options: WorkerPoolOptions) {
    this.#options = options;
    const stuckAfterMs = options.stuckAfterMs ?? 30_000;
    this.#watchdog = setInterval(() => this.#watch(stuckAfterMs), Math.max(10, Math.floor(stuckAfterMs / 6)));
    this.#watchdog.unref();
  }

  /** Starts workers 1 … count-1 and waits until each serves; fails if one cannot start. */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    const started = [];
    for (let index = 1; index < options.group.count; index += 1) started.push(pool.#start(index));
    const outcomes = await Promise.allSettled(started);
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) {
      await pool.stop();
      throw failed.reason;
    }
    return pool;
  }

  /** The running threads by worker number (tests end one to see it restarted). */
  get threads(): ReadonlyMap<number, Worker> {
    const running = new Map<number, Worker>();
    for (const [index, slot] of this.#slots) if (slot.worker !== undefined) running.set(index, slot.worker);
    return running;
  }

  /** Tells every worker to stop and waits until they have finished their requests in flight. */
  async stop(): Promise<void> {
    this.#stopping = true;
    // The watchdog keeps watching while workers drain: a blocked one is ended instead of waited for.
    await Promise.all(
      [...this.#slots.values()].map(async (slot) => {
        clearTimeout(slot.restart);
        const worker = slot.worker;
        if (worker === undefined) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ type: 'stop' } satisfies ToWorker);
        await exited;
      }),
    );
    clearInterval(this.#watchdog);
  }

  #start(index: number): Promise<void> {
    const { config, group, logger } = this.#options;
    const slot = this.#slots.get(index) ?? { worker: undefined, startedAt: 0, delayMs: this.#options.restartDelayMs ?? 1000, restart: undefined, answeredAt: 0 };
    this.#slots.set(index, slot);
    const identity: PeerIdentity = { ...group, worker: index };
    const script = this.#options.script ?? new URL('./worker-thread.ts', import.meta.url);
    const worker = new Worker(script, { workerData: { config, identity }, stdout: false, stderr: false });
    slot.worker = worker;
    slot.startedAt = Date.now();
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (message: ToLeader) => {
        if (message.type === 'ready' || message.type === 'pong') slot.answeredAt = Date.now();
        if (message.type === 'ready') {
          ready = true;
          resolve();
        } else if (message.type === 'failed') {
          reject(new Error(`worker ${index} could not start: ${message.message}`));
        }
      });
      worker.on('error', (error) => logger.error({ worker: index, err: error }, 'a worker failed'));
      worker.on('exit', (code) => {
        slot.worker = undefined;
        if (!ready) reject(new Error(`worker ${index} exited with code ${code} before serving`));
        if (this.#stopping) return;
        this.#restartLater(index, slot, code);
      });
    });
  }

  /** Pings every serving worker; one that has not answered for `stuckAfterMs` is ended (and so started again). */
  #watch(stuckAfterMs: number): void {
    const now = Date.now();
    for (const [index, slot] of this.#slots) {
      const worker = slot.worker;
      if (worker === undefined || slot.answeredAt === 0) continue;
      if (now - slot.answeredAt > stuckAfterMs) {
        this.#options.logger.error({ worker: index, silentMs: now - slot.answeredAt }, 'a worker stopped answering (its event loop is blocked); ending it');
        slot.answeredAt = 0;
        void worker.terminate();
        continue;
      }
      worker.postMessage({ type: 'ping' } satisfies ToWorker);
    }
  }

  #restartLater(index: number, slot: Slot, code: number): void {
    const lived = Date.now() - slot.startedAt;
    if (lived >= settledMs) slot.delayMs = this.#options.restartDelayMs ?? 1000;
    const delayMs = slot.delayMs;
    slot.delayMs = Math.min(slot.delayMs * 2, maxRestartDelayMs);
    this.#options.logger.error({ worker: index, code, livedMs: lived, restartInMs: delayMs }, 'a worker stopped unexpectedly; starting it again');
    slot.restart = setTimeout(() => {
      if (this.#stopping) return;
      this.#start(index).then(
        () => this.#options.logger.info({ worker: index }, 'worker started again'),
        (error: unknown) => this.#options.logger.error({ worker: index, err: error }, 'a worker could not start again'),
      );
    }, delayMs);
  }
}
