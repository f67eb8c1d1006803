import { join } from 'node:path';
import { SqliteDropletStore } from '../../src/meta/sqlite/sqlite-droplet-store.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { SqliteOperationsStore } from '../../src/meta/sqlite/sqlite-operations-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runDropletStoreContract } from './droplet-contract.ts';

runDropletStoreContract('sqlite', async () => {
  const root = await tempDir('berth-droplets-sqlite');
  const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
  return {
    meta,
    operations: new SqliteOperationsStore(meta.database),
    droplets: new SqliteDropletStore(meta.database),
    async close() {
      await meta.close();
      await root.remove();
    },
  };
});
