import { join } from 'node:path';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runMetaStoreContract } from './contract.ts';

runMetaStoreContract('sqlite', async () => {
  const root = await tempDir('berth-sqlite');
  return { store: SqliteMetaStore.open(join(root.path, 'berth.db')), close: root.remove };
});
