/**
 * Start-up and idle memory of Berth with an empty store, run from the
 * TypeScript sources (type stripping, as `npm start`) and from the
 * production bundle (as the container image):
 * `npx node bench/startup.ts [runs] [workers,…]` (default `1,default`: one
 * worker thread, and as many as the CPUs, which `serve` starts by default).
 * Time to first answer is from spawn to the first answered GET /v2/; CPU is
 * the process's user+system time by then (steadier than wall time on a
 * shared machine); idle RSS is read 3 s after that.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { bundleBerth, bundleEntry, projectRoot } from '../scripts/image/bundle.ts';
import { nodeFlags } from '../scripts/image/build.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { freePort } from './servers.ts';

interface Sample {
  firstAnswerMs: number;
  cpuMs: number;
  idleRssMiB: number;
}

async function measure(script: string, workers: string, dataDir: string): Promise<Sample> {
  const port = await freePort();
  const workerFlags = workers === 'default' ? [] : ['--workers', workers];
  const started = performance.now();
  const child = spawn(process.execPath, [...(await nodeFlags()), script, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, ...workerFlags], {
    env: { PATH: process.env['PATH'], BERTH_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (;;) {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/v2/`);
        await response.arrayBuffer();
        break;
      } catch {
        await sleep(2);
      }
    }
    const firstAnswerMs = performance.now() - started;
    const fields = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
    const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10;
    await sleep(3000);
    const rss = /VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${child.pid}/status`, 'utf8'))?.[1];
    return { firstAnswerMs, cpuMs, idleRssMiB: Number(rss) / 1024 };
  } finally {
    // Waited for, so that its shutdown does not fall into the next start.
    const exited = new Promise((resolve) => child.once('close', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

const runs = Number(process.argv[2] ?? 5);
const workerCounts = (process.argv[3] ?? '1,default').split(',');
const temp = await tempDir('berth-startup');
try {
  const bundleDir = join(temp.path, 'bundle');
  await bundleBerth(bundleDir);
  const scripts = { 'type stripping (npm start)': join(projectRoot, 'bin', 'berth.js'), 'bundle (the image)': join(bundleDir, bundleEntry) };
  const samples: Record<string, Sample[]> = {};
  let started = 0;
  // Interleaved, so that load from elsewhere on the machine falls on every mode alike.
  for (let run = 0; run < runs; run += 1) {
    for (const workers of workerCounts) {
      for (const [name, script] of Object.entries(scripts)) {
        const mode = `${name}, workers ${workers === 'default' ? `default (${availableParallelism()})` : workers}`;
        (samples[mode] ??= []).push(await measure(script, workers, join(temp.path, `data-${(started += 1)}`)));
      }
    }
  }
  for (const [mode, list] of Object.entries(samples)) {
    const figure = (values: number[], digits: number) => `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)})`;
    const line = `${mode}: first answer ${figure(
      list.map((s) => s.firstAnswerMs),
      0,
    )} ms, CPU ${figure(
      list.map((s) => s.cpuMs),
      0,
    )} ms, idle RSS ${figure(
      list.map((s) => s.idleRssMiB),
      1,
    )} MiB (median, lowest–highest of ${list.length})`;
    process.stdout.write(`${line}\n`);
  }
} finally {
  await temp.remove();
}
