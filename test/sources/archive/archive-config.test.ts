import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';

describe('archive repository configuration', () => {
  test('defaults: rescan every 10 minutes, watch on', async () => {
    const config = await loadConfig({ env: {}, overrides: { repositories: [{ prefix: 'local/', kind: 'archive', directory: '/srv/images' }] } });
    assert.deepEqual(config.repositories, [{ prefix: 'local/', kind: 'archive', directory: '/srv/images', rescanInterval: 600_000, watch: true }]);
  });

  test('from the environment, as YAML', async () => {
    const config = await loadConfig({ env: { BERTH_REPOSITORIES: '[{prefix: "", kind: archive, directory: /images, rescanInterval: 30s, watch: false}]' } });
    assert.deepEqual(config.repositories, [{ prefix: '', kind: 'archive', directory: '/images', rescanInterval: 30_000, watch: false }]);
  });

  test('a missing directory or an unknown key is an error naming it', async () => {
    await assert.rejects(loadConfig({ env: {}, overrides: { repositories: [{ prefix: '', kind: 'archive' }] } }), /directory/);
    await assert.rejects(loadConfig({ env: {}, overrides: { repositories: [{ prefix: '', kind: 'archive', directory: '/x', dir: '/y' }] } }), /dir/);
  });
});
