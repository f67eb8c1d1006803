import type { DatabaseSync, StatementSync } from 'node:sqlite';

/** Writes made through this process's connections, per database: counted by SqliteStatements. */
const writeCounts = new WeakMap<DatabaseSync, { writes: number }>();

/** The write counter of `db`, shared by every SqliteStatements over it. */
export function writeCounter(db: DatabaseSync): { writes: number } {
  let counter = writeCounts.get(db);
  if (counter === undefined) {
    counter = { writes: 0 };
    writeCounts.set(db, counter);
  }
  return counter;
}

/** Bytes of answers kept at most; past it everything is forgotten at once. */
const maxBytes = 32 * 2 ** 20;
const maxEntries = 20_000;

/**
 * Answers of hot read queries (a manifest by tag or digest, a blob link's
 * size, a tag page), kept while the database cannot have changed. The
 * database has not changed when no statement of this process wrote to it
 * (counted per write, checked on every read) and SQLite's `data_version`,
 * which moves when another connection commits (another process, `berth gc`,
 * a replica), is unchanged. `data_version` is read at most once per turn
 * of the event loop: every request served in a turn arrived before that
 * read (its bytes were read when the turn began), so each answer reflects
 * the database as it was after the request came in — what a query of its
 * own would have given it.
 */
export class ReadCache {
  readonly #counter: { writes: number };
  readonly #dataVersion: StatementSync;
  readonly #entries = new Map<string, unknown>();
  #bytes = 0;
  #writes = -1;
  #version: unknown;
  #checkedThisTurn = false;
  readonly #endTurn = () => {
    this.#checkedThisTurn = false;
  };

  constructor(db: DatabaseSync) {
    this.#counter = writeCounter(db);
    this.#dataVersion = db.prepare('PRAGMA data_version');
  }

  /** The remembered answer for `key`, or `load()`'s (remembered when defined; `size` estimates its bytes). */
  get<T>(key: string, load: () => T | undefined, size: (value: T) => number): T | undefined {
    this.#revalidate();
    const known = this.#entries.get(key) as T | undefined;
    if (known !== undefined) return known;
    const value = load();
    if (value === undefined) return undefined;
    const bytes = size(value) + key.length;
    if (this.#bytes + bytes > maxBytes || this.#entries.size >= maxEntries) this.#forget();
    if (bytes <= maxBytes) {
      this.#entries.set(key, value);
      this.#bytes += bytes;
    }
    return value;
  }

  #revalidate(): void {
    if (this.#counter.writes !== this.#writes) {
      this.#forget();
      this.#writes = this.#counter.writes;
    }
    if (this.#checkedThisTurn) return;
    this.#checkedThisTurn = true;
    setImmediate(this.#endTurn);
    const version = this.#dataVersion.get()?.['data_version'];
    if (version !== this.#version) {
      this.#forget();
      this.#version = version;
    }
  }

  #forget(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }
}
