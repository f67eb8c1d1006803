import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { SqliteReadThread } from '../../src/meta/sqlite/read-thread.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('the SQLite read thread', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let db: DatabaseSync;
  let reader: SqliteReadThread;
  before(async () => {
    dir = await tempDir('berth-read-thread');
    db = new DatabaseSync(join(dir.path, 'berth.db'));
    db.exec('PRAGMA journal_mode = WAL; CREATE TABLE names (name TEXT PRIMARY KEY)');
    reader = new SqliteReadThread(db);
  });
  after(async () => {
    await reader.close();
    db.close();
    await dir.remove();
  });

  it('sees what the writing connection committed', async () => {
    db.prepare('INSERT INTO names VALUES (?)').run('one');
    assert.deepEqual(await reader.all('SELECT name FROM names WHERE name = :name', { name: 'one' }), [{ name: 'one' }]);
  });

  it('runs a long query while this thread goes on serving', async () => {
    let ticks = 0;
    const ticking = setInterval(() => ticks++, 5);
    try {
      const [row] = await reader.all('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) SELECT COUNT(*) AS total FROM n', { count: 3_000_000 });
      assert.equal(row?.['total'], 3_000_000);
      assert.ok(ticks >= 3, `timers ran ${ticks} times during the query`);
    } finally {
      clearInterval(ticking);
    }
  });

  it('rejects with the database error', async () => {
    await assert.rejects(reader.all('SELECT * FROM missing', {}), /no such table: missing/);
  });

  it('runs queries on an in-memory database inline', async () => {
    const memory = new DatabaseSync(':memory:');
    const inline = new SqliteReadThread(memory);
    assert.deepEqual({ ...(await inline.all('SELECT 2 AS two', {}))[0] }, { two: 2 });
    await inline.close();
    memory.close();
  });
});
