import { after, before, describe } from 'node:test';
import { PostgresBrowseIndex } from '../../src/meta/postgres/postgres-browse-index.ts';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { runBrowseContract } from './browse-contract.ts';

describe('PostgreSQL browse index', { skip: postgresMissing() }, () => {
  let cluster: TestPostgres;
  before(async () => {
    cluster = await startTestPostgres();
  });
  after(() => cluster?.close());

  runBrowseContract('postgres', async () => {
    const meta = await PostgresMetaStore.open(await cluster.createDatabase());
    return { meta, browse: new PostgresBrowseIndex(meta.pool), close: () => meta.close() };
  });
});
