import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { authSettings, basic } from '../helpers/auth.ts';
import { runBerth } from '../helpers/process.ts';
import { startTestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { buildDroplet, writeRootfs } from '../sources/droplet/fixtures.ts';

test('berth droplet push signs in with --username and --password-stdin when the registry asks', async () => {
  const temp = await tempDir('berth-droplet-auth');
  const data = join(temp.path, 'data');
  const config = join(temp.path, 'berth.yaml');
  await writeFile(config, 'repositories:\n  - prefix: cf/\n    kind: droplet\n');
  await writeRootfs(join(temp.path, 'rootfs.tar.gz'), 'auth', true);
  const droplet = join(temp.path, 'droplet.tgz');
  await writeFile(droplet, await buildDroplet());
  try {
    const imported = await runBerth(['rootfs', 'import', join(temp.path, 'rootfs.tar.gz'), '--data', data, '--config', config], '', { BERTH_LOG_LEVEL: 'silent' });
    assert.equal(imported.code, 0, imported.stderr);
    const settings = await authSettings(temp.path, {
      users: { stager: 'st-pw', viewer: 'v-pw' },
      rules: { rules: [{ repositories: 'cf/**', grants: { stager: ['pull', 'push'], viewer: ['pull'] } }] },
      extra: { repositories: [{ prefix: 'cf/', kind: 'droplet' }] },
    });
    const registry = await startTestRegistry(settings, { dataDir: data });
    try {
      const push = (extra: string[], input = '') => runBerth(['droplet', 'push', droplet, '--app', 'cf/dev/shop', '--guid', 'g-1', '--registry', registry.url, ...extra], input);
      const anonymous = await push([]);
      assert.equal(anonymous.code, 1);
      assert.match(anonymous.stderr, /HTTP 401 UNAUTHORIZED/);
      const viewer = await push(['--username', 'viewer', '--password-stdin'], 'v-pw\n');
      assert.match(viewer.stderr, /HTTP 403 DENIED/);
      const stager = await push(['--username', 'stager', '--password-stdin'], 'st-pw\n');
      assert.equal(stager.code, 0, stager.stderr);
      assert.match(stager.stdout, /^sha256:[a-f0-9]{64}\n$/);
      const pulled = await fetch(`${registry.url}/v2/cf/dev/shop/manifests/g-1`, { headers: { authorization: basic('viewer', 'v-pw') } });
      assert.equal(pulled.status, 200);
      assert.match((await push(['--username', 'stager'])).stderr, /go together/);
    } finally {
      await registry.close();
    }
  } finally {
    await temp.remove();
  }
});
