import { after, before, describe } from 'node:test';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { PostgresOperationsStore } from '../../src/meta/postgres/postgres-operations-store.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { runOperationsStoreContract } from './operations-contract.ts';

describe('PostgreSQL OperationsStore', { skip: postgresMissing() }, () => {
  let cluster: TestPostgres;
  before(async () => {
    cluster = await startTestPostgres();
  });
  after(() => cluster?.close());

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
