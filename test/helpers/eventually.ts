import { setTimeout as sleep } from 'node:timers/promises';

export interface EventuallyOptions {
  /** What is awaited, for the failure message when `check` only returns false. */
  what?: string;
  /** Give up after this many milliseconds (default 10 s). */
  timeout?: number;
  /** Between attempts, in milliseconds (default 20). */
  interval?: number;
}

/**
 * Retries `check` until it passes: returns without throwing, and not
 * `false`. For what happens asynchronously by design (a webhook delivered,
 * a watch event handled, a descriptor closed); never a stand-in for a
 * clock a test could advance. Fails with the last error after `timeout`.
 */
export async function eventually<T>(check: () => T | Promise<T>, options: EventuallyOptions = {}): Promise<Exclude<T, false>> {
  const deadline = Date.now() + (options.timeout ?? 10_000);
  for (;;) {
    let failure: unknown;
    try {
      const result = await check();
      if (result !== false) return result as Exclude<T, false>;
      failure = new Error(`timed out waiting for ${options.what ?? 'a condition'}`);
    } catch (error) {
      failure = error;
    }
    if (Date.now() >= deadline) throw failure;
    await sleep(options.interval ?? 20);
  }
}
