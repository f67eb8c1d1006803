import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SqliteStatements } from '../../src/meta/sqlite/database.ts';
import { tempDir } from '../helpers/tmp.ts';

// Another connection (a GC pass in its thread, `berth gc`) holds the writer lock for `holdMs` in a thread of its own.
const holderSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { DatabaseSync } = require('node:sqlite');
const db = new DatabaseSync(workerData.path, { timeout: 5000 });
db.exec('BEGIN IMMEDIATE');
db.exec("INSERT INTO t (x) VALUES ('holder')");
parentPort.postMessage('locked');
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, workerData.holdMs);
db.exec('COMMIT');
parentPort.postMessage(process.hrtime.bigint());
db.close();
`;

/** Starts a holder and resolves once it holds the lock; `released` resolves to when it committed (process.hrtime). */
async function holdLock(path: string, holdMs: number): Promise<{ released: Promise<bigint> }> {
  const worker = new Worker(holderSource, { eval: true, workerData: { path, holdMs } });
  const exited = once(worker, 'exit');
  const messages: unknown[] = [];
  const next = async () => {
    while (messages.length === 0) messages.push(...((await once(worker, 'message')) as unknown[]));
    return messages.shift();
  };
  assert.equal(await next(), 'locked');
  const released = (async () => {
    const at = (await next()) as bigint;
    await exited;
    return at;
  })();
  return { released };
}

describe('SQLite writes waiting for the writer lock', () => {
  let root: Awaited<ReturnType<typeof tempDir>>;
  let path: string;
  let db: DatabaseSync;
  let q: SqliteStatements;
  before(async () => {
    root = await tempDir('berth-writer-lock');
    path = join(root.path, 'lock.db');
    db = new DatabaseSync(path, { timeout: 5000 });
    db.exec('PRAGMA journal_mode = WAL; CREATE TABLE t (x TEXT)');
    q = new SqliteStatements(db);
  });
  after(async () => {
    db.close();
    await root.remove();
  });

  it('a transaction waits while another connection holds the lock, then commits after it', async () => {
    const { released } = await holdLock(path, 30);
    q.transaction(() => q.run("INSERT INTO t (x) VALUES ('transaction')"));
    const acquired = process.hrtime.bigint();
    assert.ok(acquired >= (await released), 'the write went in only once the holder had committed');
    assert.deepEqual(
      q.all('SELECT x FROM t ORDER BY rowid').map((row) => row['x']),
      ['holder', 'transaction'],
    );
  });

  it('a single statement outside a transaction waits the same way', async () => {
    const { released } = await holdLock(path, 30);
    assert.equal(q.run("INSERT INTO t (x) VALUES ('single')"), 1);
    assert.ok(process.hrtime.bigint() >= (await released));
  });

  it("still fails once the connection's busy timeout has passed", async () => {
    const impatient = new DatabaseSync(path, { timeout: 50 });
    try {
      const statements = new SqliteStatements(impatient);
      const { released } = await holdLock(path, 1000);
      const started = performance.now();
      assert.throws(
        () => statements.transaction(() => statements.run("INSERT INTO t (x) VALUES ('late')")),
        (error: unknown) => (error as { errcode?: number }).errcode === 5,
      );
      const waited = performance.now() - started;
      assert.ok(waited >= 50 && waited < 900, `waited ${waited.toFixed(0)} ms`);
      await released;
      assert.equal(impatient.prepare('PRAGMA busy_timeout').get()?.['timeout'], 50, 'the connection keeps its own timeout');
    } finally {
      impatient.close();
    }
  });
});
