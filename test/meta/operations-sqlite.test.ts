import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { SqliteOperationsStore } from '../../src/meta/sqlite/sqlite-operations-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runOperationsStoreContract } from './operations-contract.ts';
import { runOutboxContract } from './outbox-contract.ts';

runOperationsStoreContract('sqlite', async () => {
  const root = await tempDir('berth-ops-sqlite');
  const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
  return {
    meta,
    operations: new SqliteOperationsStore(meta.database),
    async close() {
      await meta.close();
      await root.remove();
    },
  };
});

runOutboxContract('sqlite', async () => {
  const root = await tempDir('berth-outbox-sqlite');
  const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
  return {
    meta,
    operations: new SqliteOperationsStore(meta.database),
    async refuseEvents(webhook) {
      const name = `refuse_${webhook.replace(/\W/g, '_')}`;
      meta.database.exec(`CREATE TRIGGER ${name} BEFORE INSERT ON event_queue WHEN NEW.webhook = '${webhook}' BEGIN SELECT RAISE(ABORT, 'event queue refused'); END`);
    },
    async close() {
      await meta.close();
      await root.remove();
    },
  };
});

describe('SQLite leases', () => {
  it('expire once their time is up on the store’s clock, so another holder may take over', async () => {
    const root = await tempDir('berth-ops-lease');
    const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
    const clock = { now: 1_000_000 };
    // Renewal runs every ttl / 3 of real time: a minute keeps it out of this test.
    const operations = new SqliteOperationsStore(meta.database, { leaseTtl: 60_000, clock: () => clock.now });
    try {
      const first = await operations.leases.acquire('gc');
      assert.ok(first !== undefined);
      clock.now += 59_999;
      assert.equal(await operations.leases.acquire('gc'), undefined, 'still held');
      clock.now += 1;
      const second = await operations.leases.acquire('gc');
      assert.ok(second !== undefined, 'expired: taken over');
      await second.release();
      await first.release();
    } finally {
      await meta.close();
      await root.remove();
    }
  });
});
