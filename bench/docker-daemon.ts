// `node bench/docker-daemon.ts [--mib 1024] [--layers 4]`: a round trip of a
// large image between two Docker Engines, by `berth copy` through the
// docker-daemon: transport and a directory remote, against `docker save`
// + a file + `docker load`, in one run: wall time and peak RSS of each
// step (GNU time). Needs root, docker.io and time. See docs/copy.md.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measured, writeRandomImageArchive, type Measured } from '../test/docker/big-image.ts';
import { startDockerEngine, type DockerEngine } from '../test/helpers/dockerd.ts';
import { berthMain } from '../test/helpers/process.ts';
import { tempDir } from '../test/helpers/tmp.ts';

const { values: flags } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, layers: { type: 'string', default: '4' } } });
const totalBytes = Number(flags.mib) * 2 ** 20;
const layerCount = Number(flags.layers);

async function idOf(engine: DockerEngine, name: string): Promise<string> {
  return (await engine.docker(['image', 'inspect', '--format', '{{.Id}}', name])).trim();
}

const temp = await tempDir('berth-bench-daemon');
const [build, server] = await Promise.all([startDockerEngine(), startDockerEngine()]);
try {
  const name = 'bench/big:1';
  const seed = join(temp.path, 'seed.tar');
  const id = await writeRandomImageArchive(seed, name, totalBytes, layerCount);
  await build.docker(['load', '-i', seed]);
  await rm(seed);
  const berth = (args: string[]) => measured(process.execPath, [berthMain, 'copy', '--progress', 'none', ...args]);
  const rows: [string, Measured][] = [];

  const remote = join(temp.path, 'remote');
  rows.push(['berth copy docker-daemon: → oci: directory', await berth(['--daemon-host', build.host, `docker-daemon:${name}`, `oci:${remote}:1`])]);
  rows.push(['berth copy oci: directory → docker-daemon:', await berth(['--daemon-host', server.host, `oci:${remote}:1`, `docker-daemon:${name}`])]);
  if ((await idOf(server, name)) !== id) throw new Error('berth round trip: wrong image ID');
  await rm(remote, { recursive: true });
  await server.docker(['rmi', name]);

  const file = join(temp.path, 'saved.tar');
  rows.push(['docker save -o FILE', await measured('/usr/bin/docker', ['save', '-o', file, name], { DOCKER_HOST: build.host })]);
  rows.push(['docker load -i FILE', await measured('/usr/bin/docker', ['load', '-q', '-i', file], { DOCKER_HOST: server.host })]);
  if ((await idOf(server, name)) !== id) throw new Error('docker round trip: wrong image ID');

  console.log(`${Number(flags.mib)} MiB image in ${layerCount} layers of random bytes, two Docker Engines (vfs) on this machine:\n`);
  console.log('| step | seconds | peak RSS (MiB) |\n| --- | --- | --- |');
  for (const [label, result] of rows) console.log(`| ${label} | ${result.seconds.toFixed(1)} | ${result.peakMiB.toFixed(0)} |`);
  const sum = (from: number) => (rows[from]?.[1].seconds ?? 0) + (rows[from + 1]?.[1].seconds ?? 0);
  console.log(`\nround trip: berth ${sum(0).toFixed(1)} s, docker save + load ${sum(2).toFixed(1)} s`);
} finally {
  await Promise.all([build.stop(), server.stop()]);
  await temp.remove();
}
