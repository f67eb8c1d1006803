import { describe } from 'node:test';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { PostgresOperationsStore } from '../../src/meta/postgres/postgres-operations-store.ts';
import { postgresMissing, postgresForSuite } from '../helpers/postgres.ts';
import { runOperationsStoreContract } from './operations-contract.ts';

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
});
