import { after, before, describe } from 'node:test';
import { PostgresDropletStore } from '../../src/meta/postgres/postgres-droplet-store.ts';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { PostgresOperationsStore } from '../../src/meta/postgres/postgres-operations-store.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { runDropletStoreContract } from './droplet-contract.ts';

describe('PostgreSQL DropletStore', { skip: postgresMissing() }, () => {
  let cluster: TestPostgres;
  before(async () => {
    cluster = await startTestPostgres();
  });
  after(() => cluster?.close());

  runDropletStoreContract('postgres', async () => {
    const meta = await PostgresMetaStore.open(await cluster.createDatabase());
    const operations = new PostgresOperationsStore(meta.pool);
    return {
      meta,
      operations,
      droplets: new PostgresDropletStore(meta.pool),
      async close() {
        await operations.close();
        await meta.close();
      },
    };
  });
});
