import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { postgresMigrations } from '../../src/meta/postgres/migrations.ts';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { postgresMissing, postgresForSuite } from '../helpers/postgres.ts';
import { runMetaStoreContract } from './contract.ts';

const skip = postgresMissing();

describe('PostgreSQL MetaStore', { skip }, () => {
  const cluster = postgresForSuite();

  runMetaStoreContract('postgres', async () => {
    const store = await PostgresMetaStore.open(await cluster.createDatabase());
    return { store, close: async () => undefined };
  });

  it('migrates once when several replicas start together', async () => {
    const database = await cluster.createDatabase();
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresMetaStore.open({ ...database, max: 2 })));
    try {
      const versions = await stores[0]?.pool.query('SELECT version FROM schema_migrations ORDER BY version');
      assert.deepEqual(
        versions?.rows.map((row) => row['version']),
        postgresMigrations.map((_, index) => index + 1),
      );
      const again = await PostgresMetaStore.open(database);
      await again.close();
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  it('says which store it could not open when the server is unreachable', async () => {
    await assert.rejects(
      PostgresMetaStore.open({ host: '/nonexistent-socket-dir', database: 'berth', connectionTimeoutMillis: 2000 }),
      /cannot open the PostgreSQL metadata store: .*nonexistent-socket-dir/,
    );
  });

  it('refuses a database whose schema is newer than this Berth', async () => {
    const database = await cluster.createDatabase();
    const store = await PostgresMetaStore.open(database);
    await store.pool.query('INSERT INTO schema_migrations (version, applied_at) VALUES (99, now())');
    await store.close();
    await assert.rejects(PostgresMetaStore.open(database), /newer than this Berth/);
  });
});
