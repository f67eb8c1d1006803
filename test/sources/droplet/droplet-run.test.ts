import assert from 'node:assert/strict';
import { lstat, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { startTestRegistry } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { missingCommands, needsRoot, run } from '../../helpers/tools.ts';
import { buildDroplet, writeRootfs } from './fixtures.ts';

function skipReason(): string | false {
  return missingCommands('skopeo', 'umoci', 'chroot', 'busybox', 'bash-static') || needsRoot('chroot and an owner-keeping umoci unpack');
}

interface ImageConfig {
  config: { User: string; Env: string[]; Cmd: string[]; WorkingDir: string };
}

/** The image config of the only image in an OCI layout. */
async function layoutConfig(layout: string): Promise<ImageConfig> {
  const blob = async (digest: string) => JSON.parse(await readFile(join(layout, 'blobs', ...digest.split(':')), 'utf8')) as Record<string, unknown>;
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  const manifest = (await blob(index.manifests[0]?.digest ?? '')) as { config: { digest: string } };
  return (await blob(manifest.config.digest)) as unknown as ImageConfig;
}

test('a droplet pulled with skopeo, unpacked with umoci, runs in a chroot as vcap', { skip: skipReason() }, async () => {
  const temp = await tempDir('berth-droplet-run');
  const rootfs = join(temp.path, 'cflinuxfs.tar.gz');
  await writeRootfs(rootfs, 'test', true, true);
  const registry = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs }] });
  try {
    const upload = await fetch(`${registry.url}/v2/cf/dev/shop/blobs/?guid=droplet-1`, { method: 'POST', body: await buildDroplet() });
    assert.equal(upload.status, 201);

    const layout = join(temp.path, 'layout');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/cf/dev/shop:latest`, `oci:${layout}:shop`]);
    const bundle = join(temp.path, 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:shop`, bundle]);
    const root = join(bundle, 'rootfs');

    // Files under /home/vcap, owned by vcap, modes as staged, links right.
    const files: [string, number][] = [
      ['home/vcap', 0o755],
      ['home/vcap/app', 0o755],
      ['home/vcap/app/start.sh', 0o750],
      ['home/vcap/app/secret.txt', 0o600],
      ['home/vcap/app/data/original.txt', 0o640],
      ['home/vcap/deps/0/bin/tool', 0o755],
      ['home/vcap/profile.d/000_multi-supply.sh', 0o644],
      ['home/vcap/staging_info.yml', 0o644],
      ['home/vcap/tmp', 0o755],
    ];
    for (const [path, mode] of files) {
      const info = await lstat(join(root, path));
      assert.equal(info.uid, 2000, `${path} owner`);
      assert.equal(info.gid, 2000, `${path} group`);
      assert.equal(info.mode & 0o7777, mode, `${path} mode`);
    }
    const original = await stat(join(root, 'home/vcap/app/data/original.txt'));
    const hardLink = await stat(join(root, 'home/vcap/app/data/hard-link.txt'));
    assert.equal(hardLink.ino, original.ino, 'the hard link points at the moved file');
    assert.equal(await readlink(join(root, 'home/vcap/app/current')), '../deps/0', 'the symlink target is untouched');
    assert.equal((await lstat(join(root, 'home'))).uid, 0, '/home stays root-owned');
    assert.equal((await readFile(join(root, 'etc/rootfs-release'), 'utf8')).trim(), 'test', 'the rootfs is the base');

    // The image's own Cmd, as the container runtime would run it: its Env, as its User, from its WorkingDir.
    const { config } = await layoutConfig(layout);
    assert.equal(config.User, '2000:2000');
    const chroot = (await run('sh', ['-c', 'command -v chroot'])).trim();
    const output = await run(chroot, [`--userspec=${config.User}`, root, ...config.Cmd], {
      env: Object.fromEntries(config.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])),
    });
    assert.deepEqual(output.trim().split('\n'), [
      'greeting=hello',
      'tool=from-deps',
      'app-profile=sourced dot-profile=sourced',
      'uid=2000 gid=2000 pwd=/home/vcap/app home=/home/vcap/app port=8080 tmpdir=/home/vcap/tmp',
      'data=linked content',
      'current=1.2.3',
    ]);
  } finally {
    await registry.close();
    await temp.remove();
  }
});
