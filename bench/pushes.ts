// The push measurements: one 512 MiB blob monolithic (POST + PUT with the
// body) and chunked (POST + PATCH + empty PUT), many 1 MiB blobs 4 at a
// time, and the ceiling a Node server reaches receiving, hashing and
// durably writing the same body (bench/plain-receiver.ts). Used by
// bench/sections.ts (the full run) and bench/push.ts (these rows alone).
import { execFile, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { pool, resolveLocation, startUpload } from './load.ts';
import { cpuSecondsOf, curlParallelPuts, curlUpload } from './measure.ts';
import { freePort, type BenchServer } from './servers.ts';

export interface BigBlob {
  file: string;
  digest: string;
  size: number;
}

export interface SmallBlob {
  file: string;
  digest: string;
}

/**
 * Writes out every dirty page (sync(1)) before a measurement. A server that
 * does not fsync (Distribution) leaves hundreds of MiB for the kernel to
 * write back, and whoever is measured next would pay for them.
 */
export async function settle(): Promise<void> {
  await promisify(execFile)('sync');
}

/** Bytes per second from `started` (performance.now()) to now. */
function rate(bytes: number, started: number): number {
  return bytes / ((performance.now() - started) / 1000);
}

/** POST for a session, then one PUT ?digest= carrying the whole body; timed from the POST to the 201. */
export async function monolithicPush(base: string, big: BigBlob, repository = 'bench/big'): Promise<number> {
  await settle();
  const started = performance.now();
  const target = await startUpload(base, repository);
  target.searchParams.set('digest', big.digest);
  const { status } = await curlUpload('PUT', target.toString(), big.file);
  if (status !== 201) throw new Error(`${base} monolithic push: ${status}`);
  return rate(big.size, started);
}

/** POST, one PATCH with the whole body, an empty PUT ?digest=. */
export async function chunkedPush(base: string, big: BigBlob, repository = 'bench/chunked'): Promise<number> {
  await settle();
  const started = performance.now();
  const session = await startUpload(base, repository);
  const patched = await curlUpload('PATCH', session.toString(), big.file);
  if (patched.status !== 202) throw new Error(`${base} PATCH: ${patched.status}`);
  const finish = new URL(resolveLocation(base, patched.location));
  finish.searchParams.set('digest', big.digest);
  const done = await fetch(finish, { method: 'PUT' });
  if (done.status !== 201) throw new Error(`${base} PUT: ${done.status} ${await done.text()}`);
  return rate(big.size, started);
}

/**
 * Many small pushes: sessions opened with fetch, bodies PUT by one curl
 * process 4 at a time, so the client takes little CPU from the servers.
 */
export async function smallPushes(base: string, blobs: readonly SmallBlob[], work: string, name: string, blobBytes = 2 ** 20): Promise<number> {
  await mkdir(work, { recursive: true });
  await settle();
  const started = performance.now();
  const uploads: { url: string; file: string }[] = [];
  await pool(blobs, 4, async ({ file, digest }) => {
    const target = await startUpload(base, 'bench/small-push');
    target.searchParams.set('digest', digest);
    uploads.push({ url: target.toString(), file });
  });
  const statuses = await curlParallelPuts(uploads, 4, join(work, `${name}.curl`));
  if (statuses.length !== uploads.length || statuses.some((status) => status !== 201)) throw new Error(`${name} small pushes: ${statuses.join(' ')}`);
  return (blobs.length * blobBytes) / ((performance.now() - started) / 1000);
}

/** The plain Node receiver (bench/plain-receiver.ts) taking the big blob in `mode` (/drop, /hash, /durable). */
export async function plainReceive(base: string, big: BigBlob, mode: '/drop' | '/hash' | '/durable' | '/batched'): Promise<number> {
  await settle();
  const started = performance.now();
  const { status } = await curlUpload('PUT', `${base}${mode}`, big.file);
  if (status !== 201) throw new Error(`plain Node receiver ${mode}: ${status}`);
  return rate(big.size, started);
}

/** `measure`'s result and the CPU seconds the process `pid` spent meanwhile. */
export async function withCpu(pid: number, measure: () => Promise<number>): Promise<{ value: number; cpu: number }> {
  const before = await cpuSecondsOf(pid);
  const value = await measure();
  return { value, cpu: (await cpuSecondsOf(pid)) - before };
}

/** Berth from another checkout (`checkout/src/cli/main.ts`, same Node flags as bin/berth.js there), named "baseline": before and after in one run. */
export async function startBerthFrom(checkout: string, dataDir: string): Promise<BenchServer> {
  const port = await freePort();
  const shebang = (await readFile(join(checkout, 'bin', 'berth.js'), 'utf8')).split('\n', 1)[0] ?? '';
  const flags = shebang.split(/\s+/).filter((word) => word.startsWith('--'));
  const child = spawn(process.execPath, [...flags, join(checkout, 'src', 'cli', 'main.ts'), 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir], {
    env: { PATH: process.env['PATH'], BERTH_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const started = performance.now();
  while (
    (await fetch(`${url}/v2/`).then(
      (response) => response.status,
      () => 0,
    )) === 0
  ) {
    if (child.exitCode !== null) throw new Error(`baseline Berth exited with ${child.exitCode}`);
    await sleep(10);
  }
  const pid = child.pid ?? 0;
  return {
    name: 'baseline',
    url,
    pid,
    startupMs: performance.now() - started,
    peakRss: async () => Number(/VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''))?.[1] ?? 0) * 1024,
    resetPeakRss: () => writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => undefined),
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
