// `node bench/docker-daemon.ts [--mib 1024] [--layers 4]`: a round trip of a
// large image between two Docker Engines, by `berth copy` through the
// docker-daemon: transport and a directory remote, against `docker save`
// + a file + `docker load`, in one run: wall time and peak RSS of each
// step (GNU time). Needs root, docker.io and time. See docs/copy.md.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs, promisify } from 'node:util';
import tar from 'tar-stream';
import { startDockerEngine, type DockerEngine } from '../test/helpers/dockerd.ts';
import { berthMain } from '../test/helpers/process.ts';
import { tempDir } from '../test/helpers/tmp.ts';

const execFileAsync = promisify(execFile);
const { values: flags } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, layers: { type: 'string', default: '4' } } });
const totalBytes = Number(flags.mib) * 2 ** 20;
const layerCount = Number(flags.layers);

/** A `docker save` archive of `layers` layers of random (incompressible) bytes, written as a stream. */
async function writeBigArchive(file: string, name: string): Promise<string> {
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(file));
  const diffIds: string[] = [];
  const layerBytes = Math.floor(totalBytes / layerCount);
  for (let layer = 0; layer < layerCount; layer += 1) {
    // The layer tar is one file of random bytes; its diff_id is the hash of that tar, computed as it is written.
    const hash = createHash('sha256');
    const padding = (512 - (layerBytes % 512)) % 512;
    const entry = pack.entry({ name: `layer${layer}.tar`, size: 512 + layerBytes + padding + 1024 });
    const write = async (chunk: Buffer) => {
      hash.update(chunk);
      if (!entry.write(chunk)) await new Promise<void>((resolve) => entry.once('drain', () => resolve()));
    };
    await write(fileHeader(`data/blob${layer}.bin`, layerBytes));
    for (let offset = 0; offset < layerBytes; offset += 4 * 2 ** 20) await write(randomBytes(Math.min(4 * 2 ** 20, layerBytes - offset)));
    await write(Buffer.alloc(padding + 1024));
    await new Promise<void>((resolve, reject) => entry.end((error?: Error | null) => (error ? reject(error) : resolve())));
    diffIds.push(`sha256:${hash.digest('hex')}`);
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  pack.entry({ name: configName }, config);
  pack.entry({ name: 'manifest.json' }, JSON.stringify([{ Config: configName, RepoTags: [name], Layers: diffIds.map((_, position) => `layer${position}.tar`) }]));
  pack.finalize();
  await written;
  return `sha256:${createHash('sha256').update(config).digest('hex')}`;
}

/** A ustar header for a regular file of `size` bytes. */
function fileHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  const field = (offset: number, length: number, value: string) => header.write(value, offset, length, 'ascii');
  field(0, 100, name);
  field(100, 8, '0000644\0');
  field(108, 8, '0000000\0');
  field(116, 8, '0000000\0');
  field(124, 12, `${size.toString(8).padStart(11, '0')}\0`);
  field(136, 12, '00000000000\0');
  field(148, 8, '        ');
  field(156, 1, '0');
  field(257, 8, 'ustar\u000000');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return header;
}

/** Runs a command under GNU time: seconds and peak RSS in MiB. */
async function measured(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ seconds: number; peakMiB: number }> {
  const started = performance.now();
  const { stderr } = await execFileAsync('/usr/bin/time', ['-f', 'peak-rss-kib=%M', command, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - started) / 1000;
  const peak = /peak-rss-kib=(\d+)/.exec(stderr);
  return { seconds, peakMiB: Number(peak?.[1] ?? Number.NaN) / 1024 };
}

async function idOf(engine: DockerEngine, name: string): Promise<string> {
  return (await engine.docker(['image', 'inspect', '--format', '{{.Id}}', name])).trim();
}

const temp = await tempDir('berth-bench-daemon');
const [build, server] = await Promise.all([startDockerEngine(), startDockerEngine()]);
try {
  const name = 'bench/big:1';
  const seed = join(temp.path, 'seed.tar');
  const id = await writeBigArchive(seed, name);
  await build.docker(['load', '-i', seed]);
  await rm(seed);
  const berth = (args: string[]) => measured(process.execPath, [berthMain, 'copy', '--progress', 'none', ...args]);
  const rows: [string, { seconds: number; peakMiB: number }][] = [];

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
