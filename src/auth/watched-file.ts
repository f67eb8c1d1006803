import { stat } from 'node:fs/promises';

/** What identifies one version of a file without reading it. */
function versionOf(stats: { mtimeMs: number; size: number; ino: number }): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}`;
}

/**
 * A file parsed into a value and re-read when it changes, so `berth user
 * add` and rule edits apply without a restart. The file is looked at (one
 * stat) at most once per `checkInterval`; a new version that does not
 * parse keeps the old value in force and is reported through `onError`.
 */
export class WatchedFile<T> {
  readonly path: string;
  readonly #parse: (path: string) => Promise<T>;
  readonly #checkInterval: number;
  readonly #onError: (error: unknown) => void;
  readonly #clock: () => number;
  #value: T;
  #version: string;
  #checkedAt = 0;
  #checking: Promise<void> | undefined;

  private constructor(path: string, parse: (path: string) => Promise<T>, value: T, version: string, options: WatchOptions) {
    this.path = path;
    this.#parse = parse;
    this.#value = value;
    this.#version = version;
    this.#checkInterval = options.checkInterval ?? 1000;
    this.#onError = options.onError ?? (() => undefined);
    this.#clock = options.clock ?? Date.now;
    this.#checkedAt = this.#clock();
  }

  /** Reads the file now; a missing or invalid file is an error here, at start-up. */
  static async open<T>(path: string, parse: (path: string) => Promise<T>, options: WatchOptions = {}): Promise<WatchedFile<T>> {
    const version = versionOf(await stat(path));
    return new WatchedFile(path, parse, await parse(path), version, options);
  }

  /** The current value, re-read first when the file changed since the last look. */
  async current(): Promise<T> {
    if (this.#clock() - this.#checkedAt >= this.#checkInterval) await this.reload();
    return this.#value;
  }

  /** Looks at the file now, whatever the interval: re-reads it when it changed (a signal to reload, a test). */
  async reload(): Promise<void> {
    this.#checking ??= this.#refresh().finally(() => {
      this.#checking = undefined;
    });
    await this.#checking;
  }

  async #refresh(): Promise<void> {
    this.#checkedAt = this.#clock();
    try {
      const version = versionOf(await stat(this.path));
      if (version === this.#version) return;
      this.#value = await this.#parse(this.path);
      this.#version = version;
    } catch (error) {
      this.#onError(error);
    }
  }
}

export interface WatchOptions {
  /** How often the file is looked at, in milliseconds (default 1000). */
  checkInterval?: number;
  /** Told when a changed file cannot be read or parsed; the previous value stays. */
  onError?: (error: unknown) => void;
  /** Milliseconds since the epoch (default `Date.now`); tests advance their own. */
  clock?: () => number;
}
