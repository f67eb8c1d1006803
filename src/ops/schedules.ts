import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.ts';

/**
 * Periodic work of `berth serve`: each task runs every `interval` (never
 * two runs of one task at once), first after a random part of the interval
 * so that replicas started together do not all start together. Stopping
 * aborts a run in progress through its signal.
 */
export class Schedules {
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  readonly #loops: Promise<void>[] = [];
  readonly #next = new Map<string, number>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  every(name: string, interval: number, task: (signal: AbortSignal) => Promise<void>, options: { runAtStart?: boolean } = {}): void {
    if (interval <= 0) return;
    const signal = this.#stop.signal;
    this.#loops.push(
      (async () => {
        let wait = options.runAtStart === true ? 0 : interval / 2 + Math.random() * (interval / 2);
        while (!signal.aborted) {
          this.#next.set(name, Date.now() + wait);
          await sleep(wait, undefined, { signal, ref: false }).catch(() => undefined);
          if (signal.aborted) return;
          this.#next.delete(name);
          try {
            await task(signal);
          } catch (error) {
            if (!signal.aborted) this.#logger.error({ err: error, task: name }, `periodic ${name} failed`);
          }
          wait = interval;
        }
      })(),
    );
  }

  /** When the task runs next; undefined when it is not scheduled (or running now). */
  nextRun(name: string): Date | undefined {
    const at = this.#next.get(name);
    return at === undefined ? undefined : new Date(at);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#loops);
  }
}
