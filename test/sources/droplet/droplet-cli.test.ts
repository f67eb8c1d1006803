import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestRegistry } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { run } from '../../helpers/tools.ts';
import { buildDroplet, writeRootfs } from './fixtures.ts';

const cli = join(import.meta.dirname, '../../../src/cli/main.ts');

function berth(args: string[]): Promise<string> {
  return run(process.execPath, [cli, ...args], { env: { ...process.env, BERTH_LOG_LEVEL: 'silent' } });
}

test('berth rootfs import and berth droplet push: the imported rootfs is the base, the pushed droplet the app', async () => {
  const temp = await tempDir('berth-droplet-cli');
  const data = join(temp.path, 'data');
  const config = join(temp.path, 'berth.yaml');
  await writeFile(config, 'repositories:\n  - prefix: cf/\n    kind: droplet\n');
  await writeRootfs(join(temp.path, 'rootfs.tar.gz'), 'cli', true);
  await writeFile(join(temp.path, 'droplet.tgz'), await buildDroplet());
  try {
    const rootfs = (await berth(['rootfs', 'import', join(temp.path, 'rootfs.tar.gz'), '--data', data, '--config', config])).trim();
    assert.match(rootfs, /^sha256:[a-f0-9]{64}$/);

    const registry = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet' }] }, { dataDir: data });
    try {
      const args = ['droplet', 'push', join(temp.path, 'droplet.tgz'), '--app', 'cf/dev/shop', '--guid', 'g-1', '--registry', registry.url];
      const layer = (await berth(args)).trim();
      assert.match(layer, /^sha256:[a-f0-9]{64}$/);
      const response = await fetch(`${registry.url}/v2/cf/dev/shop/manifests/g-1`);
      assert.equal(response.status, 200);
      const manifest = (await response.json()) as { layers: { digest: string }[] };
      assert.deepEqual(
        manifest.layers.map((entry) => entry.digest),
        [rootfs, layer],
      );

      await assert.rejects(berth(['droplet', 'push', join(temp.path, 'rootfs.tar.gz'), '--app', 'dev/shop', '--guid', 'g', '--registry', registry.url]), /UNSUPPORTED/);
    } finally {
      await registry.close();
    }
    // A second rootfs moves forward; importing the first again does not go back; rollback does.
    await writeRootfs(join(temp.path, 'second.tar.gz'), 'second', true);
    const second = (await berth(['rootfs', 'import', join(temp.path, 'second.tar.gz'), '--data', data, '--config', config])).trim();
    assert.notEqual(second, rootfs);
    assert.equal((await berth(['rootfs', 'import', join(temp.path, 'rootfs.tar.gz'), '--data', data, '--config', config])).trim(), rootfs);
    const listed = (await berth(['rootfs', 'list', '--data', data, '--config', config])).trim().split('\n');
    assert.deepEqual(
      listed.map((line) =>
        line
          .split('\t')
          .slice(0, 1)
          .concat(line.split('\t')[2]?.startsWith('replaced') ? 'replaced' : 'latest'),
      ),
      [
        [second, 'latest'],
        [rootfs, 'replaced'],
      ],
    );
    assert.equal((await berth(['rootfs', 'rollback', '--data', data, '--config', config])).trim(), rootfs);
    assert.match((await berth(['rootfs', 'list', '--data', data, '--config', config])).split('\n').find((line) => line.startsWith(rootfs)) ?? '', /\tlatest\t/);
    await assert.rejects(berth(['rootfs', 'rollback', `sha256:${'0'.repeat(64)}`, '--data', data, '--config', config]), /never had the rootfs/);
    // From the file, as when the layer of an older rootfs was collected after its retention.
    assert.equal((await berth(['rootfs', 'rollback', '--file', join(temp.path, 'second.tar.gz'), '--data', data, '--config', config])).trim(), second);
    assert.match((await berth(['rootfs', 'list', '--data', data, '--config', config])).split('\n').find((line) => line.startsWith(second)) ?? '', /\tlatest\t/);

    await assert.rejects(berth(['rootfs', 'import', join(temp.path, 'rootfs.tar.gz'), '--data', data]), /no droplet repository is configured/);
    await assert.rejects(berth(['rootfs', 'import', config, '--data', data, '--config', config]), /not a tar archive/);
  } finally {
    await temp.remove();
  }
});
