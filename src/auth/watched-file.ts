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
    this.#checkedAt = Date.now();
  }

  /** Reads the file now; a missing or invalid file is an error here, at start-up. */
  static async open<T>(path: string, parse: (path: string) => Promise<T>, options: WatchOptions = {}): Promise<WatchedFile<T>> {
    const version = versionOf(await stat(path));
    return new WatchedFile(path, parse, await parse(path), version, options);
  }

  /** The current value, re-read first when the file changed since the last look. */
  async current(): Promise<T> {
    if (Date.now() - this.#checkedAt >= this.#checkInterval) {
      this.#checking ??= this.#refresh().finally(() => {
        this.#checking = undefined;
      });
      await this.#checking;
    }
    return this.#value;
  }

  async #refresh(): Promise<void> {
    this.#checkedAt = Date.now();
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
}
