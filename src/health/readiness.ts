import { dependencies, type Dependency } from '../errors/unavailable.ts';

/** One dependency's reachability as last checked. */
export interface DependencyState {
  up: boolean;
  /** When it last changed (ms since the epoch). */
  since: number;
  /** Why the last check failed. */
  reason?: string;
}

export interface ReadinessOptions {
  /** A cheap round trip to each dependency that has one; throws when it cannot be reached. */
  probes: Partial<Record<Dependency, (signal: AbortSignal) => Promise<void>>>;
  /** Time between checks, in milliseconds. */
  interval: number;
  /** How long a check may take before the dependency counts as down. */
  timeout: number;
  /** Told when a dependency goes down or comes back (logs, metrics). */
  onChange?: (dependency: Dependency, state: DependencyState) => void;
}

/**
 * Whether the metadata database and the blob store can be reached, checked
 * in the background every `interval` (never per request, so that probes
 * from load balancers cost nothing). A check that does not answer within
 * `timeout` counts as down.
 */
export class Readiness {
  readonly #options: ReadinessOptions;
  readonly #states = new Map<Dependency, DependencyState>();
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ReadinessOptions) {
    this.#options = options;
    for (const dependency of Object.keys(options.probes) as Dependency[]) this.#states.set(dependency, { up: true, since: Date.now() });
  }

  /** Checks once now, then every interval until `stop`. */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), this.#options.interval);
    this.#timer.unref();
  }

  /** Stops checking; a check still running is ignored (the stores are closing, not down). */
  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** Runs every probe once (a check already running is joined, not repeated). */
  check(): Promise<void> {
    this.#checking ??= this.#checkAll().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  get ready(): boolean {
    return [...this.#states.values()].every((state) => state.up);
  }

  /** Each dependency's state, keyed by its name as the docs and 503 bodies give it. */
  report(): Record<string, { status: 'up' | 'down'; since: string; reason?: string }> {
    const report: Record<string, { status: 'up' | 'down'; since: string; reason?: string }> = {};
    for (const [dependency, state] of this.#states) {
      report[dependencies[dependency]] = {
        status: state.up ? 'up' : 'down',
        since: new Date(state.since).toISOString(),
        ...(state.reason === undefined ? {} : { reason: state.reason }),
      };
    }
    return report;
  }

  async #checkAll(): Promise<void> {
    const { probes, timeout } = this.#options;
    await Promise.all(
      (Object.entries(probes) as [Dependency, (signal: AbortSignal) => Promise<void>][]).map(async ([dependency, probe]) => {
        const signal = AbortSignal.timeout(timeout);
        const failure = await withDeadline(probe(signal), signal).then(
          () => undefined,
          (error: unknown) => (signal.aborted ? `no answer within ${timeout} ms` : error instanceof Error ? error.message : String(error)),
        );
        this.#record(dependency, failure);
      }),
    );
  }

  #record(dependency: Dependency, failure: string | undefined): void {
    if (this.#stopped) return;
    const previous = this.#states.get(dependency);
    const up = failure === undefined;
    if (previous !== undefined && previous.up === up) {
      if (!up) previous.reason = failure;
      return;
    }
    const state: DependencyState = { up, since: Date.now(), ...(failure === undefined ? {} : { reason: failure }) };
    this.#states.set(dependency, state);
    this.#options.onChange?.(dependency, state);
  }
}

/** Settles with `work`, or rejects when `signal` aborts first (a probe that ignores its signal cannot hold a check). */
function withDeadline(work: Promise<void>, signal: AbortSignal): Promise<void> {
  work.catch(() => undefined);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
