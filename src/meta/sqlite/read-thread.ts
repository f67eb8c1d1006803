import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import type { Row } from './database.ts';

export type NamedParams = Record<string, SQLInputValue>;

interface Answer {
  id: number;
  rows?: Row[];
  error?: string;
}

/**
 * Read-only queries on a second connection in a worker thread, for the few
 * reads that can run for seconds at scale (usage summed over a million
 * repositories): the serving thread awaits the answer instead of running
 * the query. WAL mode gives the reader the last committed state while
 * writers go on. A database in memory has no second connection: its
 * queries run inline.
 */
export class SqliteReadThread {
  readonly #db: DatabaseSync;
  readonly #path: string | null;
  readonly #waiting = new Map<number, { resolve: (rows: Row[]) => void; reject: (error: Error) => void }>();
  #worker: Worker | undefined;
  #next = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#path = db.location();
  }

  all(sql: string, params: NamedParams): Promise<Row[]> {
    if (this.#path === null) return Promise.resolve(this.#db.prepare(sql).all(params) as Row[]);
    const id = this.#next++;
    const worker = this.#started();
    // Referenced only while a query waits: an idle thread must not keep the process alive.
    if (this.#waiting.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, sql, params });
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(new URL('./read-thread-worker.ts', import.meta.url), { workerData: { path: this.#path } });
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const waiter = this.#waiting.get(answer.id);
      if (waiter === undefined) return;
      this.#waiting.delete(answer.id);
      if (this.#waiting.size === 0) worker.unref();
      if (answer.error === undefined) waiter.resolve(answer.rows ?? []);
      else waiter.reject(new Error(answer.error));
    });
    worker.on('error', (error) => this.#failAll(error));
    worker.on('exit', () => {
      if (this.#worker === worker) this.#worker = undefined;
      this.#failAll(new Error('the SQLite read thread stopped'));
    });
    this.#worker = worker;
    return worker;
  }

  #failAll(error: Error): void {
    for (const waiter of this.#waiting.values()) waiter.reject(error);
    this.#waiting.clear();
  }
}
