import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.ts';
import { tempDir } from '../helpers/tmp.ts';
import { runBlobStoreContract } from './contract.ts';

runBlobStoreContract('fs', async () => {
  const root = await tempDir('berth-fs-blobs');
  return { store: await FsBlobStore.open(root.path), close: root.remove };
});
