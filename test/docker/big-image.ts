import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import tar from 'tar-stream';

const execFileAsync = promisify(execFile);

/**
 * Writes, as a stream, a `docker save` archive of one image named `name`:
 * `layers` layers of random (incompressible) bytes, `totalBytes` in all.
 * Resolves to its image ID (the config's digest). Used by the large-image
 * test and bench/docker-daemon.ts.
 */
export async function writeRandomImageArchive(file: string, name: string, totalBytes: number, layers: number): Promise<string> {
  const pack = tar.pack();
  const written = pipeline(pack, createWriteStream(file));
  const diffIds: string[] = [];
  const layerBytes = Math.floor(totalBytes / layers);
  for (let layer = 0; layer < layers; layer += 1) {
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

export interface Measured {
  seconds: number;
  /** Peak resident set size of the command, in MiB (GNU time's %M). */
  peakMiB: number;
}

/** Runs a command under GNU time (/usr/bin/time): its wall time and peak RSS; rejects when it fails. */
export async function measured(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Measured> {
  const started = performance.now();
  const { stderr } = await execFileAsync('/usr/bin/time', ['-f', 'peak-rss-kib=%M', command, ...args], { env: { ...process.env, ...env }, maxBuffer: 64 * 2 ** 20 });
  const seconds = (performance.now() - started) / 1000;
  const peak = /peak-rss-kib=(\d+)/.exec(stderr);
  return { seconds, peakMiB: Number(peak?.[1] ?? Number.NaN) / 1024 };
}
