import { join } from 'node:path';
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
