import { describe } from 'node:test';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { PostgresOperationsStore } from '../../src/meta/postgres/postgres-operations-store.ts';
import { postgresMissing, postgresForSuite } from '../helpers/postgres.ts';
import { runOperationsStoreContract } from './operations-contract.ts';
import { runOutboxContract } from './outbox-contract.ts';

describe('PostgreSQL OperationsStore', { skip: postgresMissing() }, () => {
  const cluster = postgresForSuite();

  runOperationsStoreContract('postgres', async () => {
    const meta = await PostgresMetaStore.open(await cluster.createDatabase());
    const operations = new PostgresOperationsStore(meta.pool);
    return {
      meta,
      operations,
      async close() {
        await operations.close();
        await meta.close();
      },
    };
  });

  runOutboxContract('postgres', async () => {
    const meta = await PostgresMetaStore.open(await cluster.createDatabase());
    const operations = new PostgresOperationsStore(meta.pool);
    return {
      meta,
      operations,
      async refuseEvents(webhook) {
        const name = `refuse_${webhook.replace(/\W/g, '_')}`;
        await meta.pool.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'event queue refused'; END $$`);
        await meta.pool.query(`CREATE TRIGGER ${name} BEFORE INSERT ON event_queue FOR EACH ROW WHEN (NEW.webhook = '${webhook}') EXECUTE FUNCTION ${name}()`);
      },
      async close() {
        await operations.close();
        await meta.close();
      },
    };
  });
});
