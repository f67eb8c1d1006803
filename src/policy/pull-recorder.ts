import type { Logger } from '../log.ts';
import type { PullLog } from '../meta/operations-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';

/** Pull times are written at most this often: retention thinks in days, pulls happen thousands of times a second. */
const flushInterval = 5000;
/** Distinct manifests remembered between writes; past it the oldest waiting are written early. */
const maxPending = 50_000;

/**
 * Remembers when manifests were pulled, for retention's `keepPulledWithin`,
 * without a write per pull: the latest pull of each manifest is kept in
 * memory and written in one transaction every few seconds.
 */
export class PullRecorder {
  readonly #log: PullLog;
  readonly #logger: Logger;
  /** The latest pull of each manifest, `at` in milliseconds (a Date per pull is garbage a busy registry makes thousands of times a second). */
  #pending = new Map<string, { repository: RepositoryName; digest: Digest; at: number }>();
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(log: PullLog, logger: Logger) {
    this.#log = log;
    this.#logger = logger;
  }

  pulled(repository: RepositoryName, digest: Digest, at = Date.now()): void {
    const key = `${repository}@${digest}`;
    const pending = this.#pending.get(key);
    if (pending !== undefined) pending.at = at;
    else this.#pending.set(key, { repository, digest, at });
    if (this.#pending.size >= maxPending) void this.flush();
    else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), flushInterval);
      this.#timer.unref();
    }
  }

  /** Writes what is pending. Never rejects. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const pulls = [...this.#pending.values()].map(({ repository, digest, at }) => ({ repository, digest, at: new Date(at) }));
    this.#pending = new Map();
    this.#writing = this.#writing.then(() =>
      this.#log.record(pulls).catch((error: unknown) => this.#logger.warn({ err: error, pulls: pulls.length }, 'could not record pull times')),
    );
    return this.#writing;
  }
}
