import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { buildImage, type BuiltImage } from '../../scripts/image/build.ts';
import { imagePaths } from '../../scripts/image/compose.ts';
import { hostPlatform, platforms } from '../../scripts/image/platform.ts';
import { imageBuildUnavailable, imageCacheDir, testImageName } from '../helpers/berth-image.ts';
import { freePort } from '../helpers/nginx.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';
import { readArchive } from './read-image.ts';

const arm64 = platforms['linux/arm64'];

/**
 * The arm64 image run, not just inspected: its root file system unpacked
 * and its own Node started under qemu-user with the image's entrypoint and
 * command, `-L` pointing the dynamic loader at the image, so the binary
 * runs on the image's loader and libraries, the bundle and configuration
 * file. There is no arm64 machine here; an emulator is the
 * next best (it does not check the kernel or the CPU's own behaviour).
 */
describe('the arm64 image under qemu-user', {
  skip: imageBuildUnavailable() || (hostPlatform().name === 'linux/arm64' ? 'this machine is arm64: the other image tests run it' : missingCommands('qemu-aarch64-static', 'tar')),
  timeout: 600_000,
}, () => {
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let built: BuiltImage;
  let root: string;
  let config: { Entrypoint: string[]; Cmd: string[] };
  const qemu = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawn('qemu-aarch64-static', ['-L', root, ...args], { env: { PATH: '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });

  before(async () => {
    assert.ok(arm64 !== undefined);
    temp = await tempDir('berth-image-arm64');
    built = await buildImage({ output: join(temp.path, 'arm64.oci'), platforms: [arm64], name: testImageName, cacheDir: imageCacheDir });
    const archive = await readArchive(built.output);
    const manifest = archive.json(built.digest) as { config: { digest: string }; layers: { digest: string }[] };
    config = (archive.json(manifest.config.digest) as { config: typeof config }).config;
    root = join(temp.path, 'rootfs');
    await mkdir(root);
    for (const [position, layer] of manifest.layers.entries()) {
      const file = join(temp.path, `layer-${position}.tar.gz`);
      await writeFile(file, archive.blobs.get(layer.digest) ?? Buffer.alloc(0));
      await run('tar', ['-xzf', file, '-C', root]);
    }
  });
  after(() => temp.remove());

  it("runs the image's Node binary on the image's own loader and libraries", async () => {
    const child = qemu([`${root}${imagePaths.node}`, '-p', 'process.arch + " " + process.version']);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    assert.match(out.trim(), /^arm64 v24\.\d+\.\d+$/);
  });

  it("serves as a registry with the image's entrypoint and command, and stops on SIGTERM with exit code 0", async () => {
    assert.deepEqual(config.Cmd, ['serve', '--config', imagePaths.config]);
    // Node resolves its script and reads files with calls qemu does not remap: the image's paths, under the unpacked root.
    const [node, ...rest] = [...config.Entrypoint, ...config.Cmd].map((arg) => (arg.startsWith('/') ? `${root}${arg}` : arg));
    assert.equal(node, `${root}${imagePaths.node}`);
    const port = await freePort();
    // Listening address and data directory are set the way a user would (BERTH_* wins over the file): a free port on
    // loopback, and a directory outside the unpacked image.
    const data = join(temp.path, 'data');
    const child = qemu([node, ...rest], { BERTH_LISTEN: `127.0.0.1:${port}`, BERTH_DATA_DIR: data });
    let logs = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (logs += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (logs += chunk));
    let running = true;
    const exited = new Promise<number | null>((resolve) =>
      child.on('close', (code) => {
        running = false;
        resolve(code);
      }),
    );
    try {
      let ready = false;
      for (let attempt = 0; attempt < 600 && !ready && running; attempt += 1) {
        ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
          async (response) => {
            await response.arrayBuffer();
            return response.status === 200;
          },
          () => false,
        );
        if (!ready) await sleep(100);
      }
      assert.ok(ready, `not ready within 60 s:\n${logs}`);
      const v2 = await fetch(`http://127.0.0.1:${port}/v2/`);
      assert.equal(v2.status, 200);
      assert.equal(v2.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.deepEqual(await v2.json(), {});
      assert.ok((await readdir(data)).includes('berth.db'), 'the metadata database is in the data directory given');
      // Every worker started (the leader answers before the others have, and they are slow under emulation): SIGTERM now drains them all.
      for (let attempt = 0; attempt < 600 && running && !logs.includes('"msg":"Berth is listening'); attempt += 1) await sleep(100);
      assert.match(logs, /"msg":"Berth is listening/);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0, logs);
    assert.match(logs, /"msg":"stopped"/);
  });
});
