import { join } from 'node:path';
import { describe } from 'node:test';
import { imageBuildUnavailable, testImageName } from '../helpers/berth-image.ts';
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
