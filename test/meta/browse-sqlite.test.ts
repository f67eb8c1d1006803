import { join } from 'node:path';
import { SqliteBrowseIndex } from '../../src/meta/sqlite/sqlite-browse-index.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runBrowseContract } from './browse-contract.ts';

runBrowseContract('sqlite', async () => {
  const root = await tempDir('berth-browse');
  const meta = SqliteMetaStore.open(join(root.path, 'berth.db'));
  return {
    meta,
    browse: new SqliteBrowseIndex(meta.database),
    close: async () => {
      await meta.close();
      await root.remove();
    },
  };
});
