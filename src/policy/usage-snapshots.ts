import type { RepositoryScope, Usage, UsageIndex } from '../meta/operations-store.ts';

export interface UsageSnapshotOptions {
  /** A sum that took at least this long marks its scope as slow: far above what any sum of a usual registry takes, even on a busy machine. */
  slowMs?: number;
  /** How old a slow scope's sum may get before it is taken again, in the background. */
  maxAgeMs?: number;
  /** Milliseconds; injected by tests. */
  now?: () => number;
}

interface Snapshot {
  usage: Usage;
  takenAt: number;
  /** Bytes admitted here since the sum was taken. */
  admitted: number;
  refreshing?: Promise<void>;
}

/**
 * Quota usage for admission checks. A scope whose sum is cheap (almost every
 * one) is summed on every check, exactly. A scope whose sum is slow (a quota
 * over hundreds of thousands of repositories: seconds) is checked against
 * its last sum plus the bytes admitted here since, and summed again in the
 * background once that is `maxAgeMs` old: an upload never waits seconds for
 * a sum. Such a quota may overshoot by what other replicas admit between two
 * sums, and frees room for new uploads only at the next sum after a delete.
 */
export class UsageSnapshots {
  readonly #index: UsageIndex;
  readonly #slowMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  readonly #slow = new Map<string, Snapshot>();

  constructor(index: UsageIndex, options: UsageSnapshotOptions = {}) {
    this.#index = index;
    this.#slowMs = options.slowMs ?? 1000;
    this.#maxAgeMs = options.maxAgeMs ?? 10_000;
    this.#now = options.now ?? (() => performance.now());
  }

  async usage(scope: RepositoryScope): Promise<Usage> {
    const snapshot = this.#slow.get(keyOf(scope));
    if (snapshot === undefined) return this.#sum(scope);
    if (this.#now() - snapshot.takenAt >= this.#maxAgeMs) snapshot.refreshing ??= this.#refresh(scope, snapshot);
    return { bytes: snapshot.usage.bytes + snapshot.admitted, repositories: snapshot.usage.repositories };
  }

  /** Tells of bytes just admitted into the scope, so a slow scope's snapshot counts them before its next sum. */
  admitted(scope: RepositoryScope, bytes: number): void {
    const snapshot = this.#slow.get(keyOf(scope));
    if (snapshot !== undefined) snapshot.admitted += bytes;
  }

  async #sum(scope: RepositoryScope): Promise<Usage> {
    const started = this.#now();
    const usage = await this.#index.usage(scope);
    const finished = this.#now();
    if (finished - started >= this.#slowMs) this.#slow.set(keyOf(scope), { usage, takenAt: finished, admitted: 0 });
    return usage;
  }

  async #refresh(scope: RepositoryScope, snapshot: Snapshot): Promise<void> {
    const admittedBefore = snapshot.admitted;
    try {
      const started = this.#now();
      const usage = await this.#index.usage(scope);
      const finished = this.#now();
      if (finished - started < this.#slowMs) {
        this.#slow.delete(keyOf(scope));
        return;
      }
      // What was admitted while summing may or may not be in the sum: keep counting it (overstating is the safe side).
      Object.assign(snapshot, { usage, takenAt: finished, admitted: snapshot.admitted - admittedBefore });
    } catch {
      // The stale snapshot stays; the next check after maxAgeMs tries again.
      snapshot.takenAt = this.#now();
    } finally {
      delete snapshot.refreshing;
    }
  }
}

function keyOf(scope: RepositoryScope): string {
  return `${scope.prefix}\n${scope.pattern}`;
}
