/**
 * Concurrent callers with the same key share one run of the work: the
 * first starts it, the others wait for its result. The key is free again
 * as soon as the work settles.
 */
export class SingleFlight {
  readonly #pending = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.#pending.get(key);
    if (running !== undefined) return running as Promise<T>;
    const started = work().finally(() => this.#pending.delete(key));
    this.#pending.set(key, started);
    return started;
  }
}
