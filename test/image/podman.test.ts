import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { projectRoot } from '../../scripts/image/bundle.ts';
import { imagePaths } from '../../scripts/image/compose.ts';
import { hostPlatform } from '../../scripts/image/platform.ts';
import { runDefaults } from '../../scripts/image/run.ts';
import { imageBuildUnavailable, testImageName } from '../helpers/berth-image.ts';
import { freePort } from '../helpers/nginx.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';
import { containerScenario } from './container-scenario.ts';

describe('the image in podman', { skip: imageBuildUnavailable() || missingCommands('podman', 'runc', 'slirp4netns', 'skopeo'), timeout: 900_000 }, () => {
  let storage: string[] = [];
  containerScenario(
    async () => ({
      cli: (args) => run('podman', [...storage, ...args]),
      async load(image, temp) {
        storage = [
          '--root',
          join(temp, 'root'),
          '--runroot',
          join(temp, 'run'),
          '--tmpdir',
          join(temp, 'tmp'),
          '--storage-driver',
          'vfs',
          '--cgroup-manager',
          'cgroupfs',
          '--events-backend',
          'file',
          '--runtime',
          'runc',
        ];
        const loaded = /Loaded image: (\S+)/.exec(await run('podman', [...storage, 'load', '--input', image.output]))?.[1];
        if (loaded === undefined || !loaded.endsWith(`/${testImageName}`)) throw new Error(`podman load named the image ${loaded}`);
        return testImageName;
      },
      // slirp4netns: the published port on loopback without touching the host's bridges or firewall; Berth listens on 0.0.0.0:5000 inside.
      networkFlags: () => ['--network', 'slirp4netns'],
      // This sandbox may neither raise resource limits (podman's default as root) nor use crun's cgroup setup: runc, and limits at or below the current ones.
      runFlags: ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'],
      async stop() {},
    }),
    'podman',
  );
});

/**
 * The second of the two documented commands, as a user runs it (the first
 * is `npm ci`): `npm run image -- --run podman`. podman's own settings
 * files (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF) give it the storage,
 * runtime and limits this sandbox needs; the command itself is the
 * documented one, with a free port instead of 5000.
 */
describe('npm run image -- --run podman', { skip: imageBuildUnavailable() || missingCommands('podman', 'runc', 'slirp4netns'), timeout: 900_000 }, () => {
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let env: NodeJS.ProcessEnv;
  const podman = (args: string[]) => run('podman', args, { env });
  before(async () => {
    temp = await tempDir('berth-image-run-cli');
    await writeFile(
      join(temp.path, 'containers.conf'),
      '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\nnetns = "slirp4netns"\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
    );
    await writeFile(join(temp.path, 'storage.conf'), `[storage]\ndriver = "vfs"\ngraphroot = "${join(temp.path, 'root')}"\nrunroot = "${join(temp.path, 'run')}"\n`);
    const { NODE_TEST_CONTEXT: _testRunner, ...inherited } = process.env;
    env = { ...inherited, CONTAINERS_CONF: join(temp.path, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(temp.path, 'storage.conf') };
  });
  after(async () => {
    await podman(['rm', '-f', '-t', '0', runDefaults.container]).catch(() => undefined);
    await podman(['volume', 'rm', '-f', runDefaults.volume]).catch(() => undefined);
    await podman(['rmi', '-a', '-f']).catch(() => undefined);
    await rm(temp.path, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });

  it('builds, loads and starts Berth, and returns once it is ready', async () => {
    const port = await freePort();
    const output = join(temp.path, 'berth.oci');
    const printed = await run(
      process.execPath,
      [join(projectRoot, 'scripts', 'image', 'cli.ts'), '--platform', hostPlatform().name, '--output', output, '--run', 'podman', '--publish', `127.0.0.1:${port}`],
      { env, cwd: projectRoot },
    );
    assert.match(printed, new RegExp(`Berth is running in the container berth \\(\\w+\\), its data on the volume berth-data: http://127\\.0\\.0\\.1:${port}/v2/`));
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    assert.equal(ready.status, 200);
    const inspect = JSON.parse(await podman(['inspect', runDefaults.container])) as { HostConfig: { ReadonlyRootfs: boolean }; Mounts: { Name?: string; Destination: string }[] }[];
    assert.equal(inspect[0]?.HostConfig.ReadonlyRootfs, true);
    assert.ok(inspect[0]?.Mounts.some((mount) => mount.Name === runDefaults.volume && mount.Destination === imagePaths.data));
  });
});
