import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import { writeCounter } from './read-cache.ts';

export type Row = Record<string, SQLInputValue>;

/** A cell nothing ever notifies: `Atomics.wait` on it is a sleep finer than SQLite's own. */
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Milliseconds between attempts at the writer lock: none for the first
 * 0.2 ms (a pass's write commits in about that), then sleeps as fine as the
 * system allows, coarser after a few milliseconds.
 */
function lockWaitStep(waitedMs: number): number {
  if (waitedMs < 0.2) return 0;
  return waitedMs < 5 ? 0.05 : Math.min(2, waitedMs / 10);
}

function isBusy(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { errcode?: unknown }).errcode === 5;
}

/** Prepared statements over one SQLite connection, cached by SQL text, and transactions. */
export class SqliteStatements {
  readonly #db: DatabaseSync;
  readonly #statements = new Map<string, StatementSync>();
  readonly #counter: { writes: number };
  readonly #noBusyHandler: StatementSync;
  readonly #busyHandler: StatementSync;
  /** The connection's busy timeout: how long a write waits for the writer lock before it fails. */
  readonly #lockTimeoutMs: number;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#counter = writeCounter(db);
    this.#lockTimeoutMs = Number(db.prepare('PRAGMA busy_timeout').get()?.['timeout'] ?? 0);
    this.#noBusyHandler = db.prepare('PRAGMA busy_timeout = 0');
    this.#busyHandler = db.prepare(`PRAGMA busy_timeout = ${this.#lockTimeoutMs}`);
  }

  get(sql: string, ...params: SQLInputValue[]): Row | undefined {
    return this.statement(sql).get(...params) as Row | undefined;
  }

  all(sql: string, ...params: SQLInputValue[]): Row[] {
    return this.statement(sql).all(...params) as Row[];
  }

  run(sql: string, ...params: SQLInputValue[]): number {
    return Number(this.statement(sql).run(...params).changes);
  }

  /**
   * Prepared once per SQL text: preparing costs more than most of these
   * queries. Every `run` (a write) is counted, so that the ReadCache over
   * this database forgets what a write may have changed.
   */
  statement(sql: string): StatementSync {
    let statement = this.#statements.get(sql);
    if (statement === undefined) {
      const prepared = this.#db.prepare(sql);
      const run = prepared.run;
      const counter = this.#counter;
      prepared.run = ((...params: unknown[]) => {
        counter.writes++;
        const write = () => Reflect.apply(run, prepared, params) as ReturnType<StatementSync['run']>;
        // Outside a transaction, the statement takes the writer lock itself.
        return this.#db.isTransaction ? write() : this.#withWriterLock(write);
      }) as StatementSync['run'];
      statement = prepared;
      this.#statements.set(sql, statement);
    }
    return statement;
  }

  transaction<T>(work: () => T): T {
    this.#withWriterLock(() => this.#db.exec('BEGIN IMMEDIATE'));
    try {
      const result = work();
      this.#db.exec('COMMIT');
      return result;
    } catch (error) {
      // SQLite rolls back by itself on some errors (SQLITE_FULL among them);
      // a second ROLLBACK would replace its error with "no transaction is active".
      if (this.#db.isTransaction) this.#db.exec('ROLLBACK');
      throw error;
    }
  }

  /**
   * Runs `attempt`, a statement that takes the writer lock, retrying in
   * steps of a fraction of a millisecond while another connection (a GC
   * pass, `berth gc`, the pass thread) holds the lock. SQLite's own busy
   * handler sleeps 1, 2, 5, 10 … ms between attempts, so a write that finds
   * the lock held for 0.3 ms waited at least 1 ms, on the serving thread;
   * this waits about as long as the lock is held. Past the connection's busy
   * timeout the write fails as it did before.
   */
  #withWriterLock<T>(attempt: () => T): T {
    const started = performance.now();
    for (;;) {
      this.#noBusyHandler.run();
      try {
        return attempt();
      } catch (error) {
        const waited = performance.now() - started;
        if (!isBusy(error) || waited >= this.#lockTimeoutMs) throw error;
        const step = lockWaitStep(waited);
        if (step > 0) Atomics.wait(sleepCell, 0, 0, step);
      } finally {
        this.#busyHandler.run();
      }
    }
  }
}

/** SQL functions Berth's queries use, on every connection: `regexp(pattern, value)` for repository scopes. */
export function registerFunctions(db: DatabaseSync): void {
  const patterns = new Map<string, RegExp>();
  db.function('regexp', { deterministic: true }, (pattern, value) => {
    let expression = patterns.get(String(pattern));
    if (expression === undefined) {
      expression = new RegExp(String(pattern));
      if (patterns.size > 1000) patterns.clear();
      patterns.set(String(pattern), expression);
    }
    return expression.test(String(value)) ? 1 : 0;
  });
}

/**
 * Opens (creating when absent) a SQLite database in WAL mode, with foreign
 * keys on, and brings its schema up to date with `migrations`.
 */
export function openDatabase(path: string, migrations: readonly string[]): DatabaseSync {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new DatabaseSync(path, { timeout: 5000 });
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
  applyMigrations(db, migrations);
  return db;
}

/**
 * Brings a database's schema up to date: `migrations[i]` is version i + 1,
 * applied once, in its own transaction, recorded in `schema_migrations`.
 * Shared by every SQLite database Berth keeps.
 */
export function applyMigrations(db: DatabaseSync, migrations: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = (db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get()?.['version'] as number | null) ?? 0;
  if (applied > migrations.length) {
    throw new Error(`the database schema (version ${applied}) is newer than this Berth (version ${migrations.length})`);
  }
  migrations.forEach((sql, index) => {
    const version = index + 1;
    if (version <= applied) return;
    db.exec('BEGIN IMMEDIATE');
    try {
      // Another process may have applied it while we waited for the lock.
      if (db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(version) === undefined) {
        db.exec(sql);
        db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)').run(version, Date.now());
      }
      db.exec('COMMIT');
    } catch (error) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw error;
    }
  });
}
