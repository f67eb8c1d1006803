// Garbage collection while pushes run: a pass over `blobs` stored blobs
// (half of them garbage), its duration, and push throughput during the
// pass against push throughput without one. See docs/operations.md.
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { benchImage, ociManifest, pool, pushBlob, putManifest } from './load.ts';
import { cpuSecondsOf, idleShare, machineCpu } from './measure.ts';
import type { Row } from './report.ts';
import type { BenchContext } from './sections.ts';
import { startBerth, type BenchServer } from './servers.ts';

const execFileAsync = promisify(execFile);
const berthMain = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
/** Garbage must be older than this to go; pushes running during the pass are younger. */
const graceMs = 5000;
const pushers = 8;
const repositories = 100;

interface GcReportJson {
  durationMs: number;
  blobsDeleted: number;
  linksRemoved: number;
  bytesFreed: number;
}

/** Pushes small images (one new layer, a shared config) until `done()`; images per second and failures. */
async function pushWhile(base: string, done: () => boolean, label: string): Promise<{ perSecond: number; failures: number }> {
  const image = benchImage(256);
  for (let index = 0; index < pushers; index++) await pushBlob(base, `gc/live${index}`, image.config);
  let pushed = 0;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: pushers }, async (_, worker) => {
      for (let n = 0; !done(); n++) {
        const layer = randomBytes(256);
        const manifest = Buffer.from(
          JSON.stringify({
            schemaVersion: 2,
            mediaType: ociManifest,
            config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.config.length },
            layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await pushBlob(base, `gc/live${worker}`, layer), size: layer.length }],
          }),
        );
        await putManifest(base, `gc/live${worker}`, `${label}-${n}`, manifest, ociManifest).then(
          () => pushed++,
          () => failures++,
        );
      }
    }),
  );
  return { perSecond: pushed / ((performance.now() - started) / 1000), failures };
}

async function seed(base: string, blobs: number, log: (message: string) => void): Promise<void> {
  const image = benchImage(64);
  const names = Array.from({ length: repositories }, (_, index) => `gc/r${String(index).padStart(3, '0')}`);
  await pool(names, 16, (name) => pushBlob(base, name, image.config).then(() => undefined));
  const referenced = Math.floor(blobs / 2);
  log(`seeding ${referenced} referenced and ${blobs - referenced} unreferenced blobs`);
  await pool(
    Array.from({ length: blobs }, (_, index) => index),
    16,
    async (index) => {
      const repository = names[index % repositories] as string;
      const layer = randomBytes(64);
      const digest = await pushBlob(base, repository, layer);
      if (index >= referenced) return;
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: ociManifest,
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.configDigest, size: image.config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: layer.length }],
        }),
      );
      await putManifest(base, repository, `t${index}`, manifest, ociManifest);
    },
  );
}

/** Runs `berth gc --json` beside the server; its report, wall time and CPU seconds (sampled until it exits). */
async function runPass(dataDir: string, duty: number | undefined): Promise<{ report: GcReportJson; wallMs: number; cpuSeconds: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [berthMain, 'gc', '--json', '--data', dataDir], {
    env: {
      PATH: process.env['PATH'],
      BERTH_GC_GRACE_PERIOD: `${graceMs}ms`,
      BERTH_GC_INTERVAL: '0',
      ...(duty === undefined ? {} : { BERTH_GC_DUTY: String(duty) }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  let cpu = 0;
  const sampler = setInterval(() => void cpuSecondsOf(child.pid ?? 0).then((seconds) => (cpu = Math.max(cpu, seconds))), 50);
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(sampler);
  if (code !== 0) throw new Error(`berth gc exited with ${code}`);
  return { report: JSON.parse(output) as GcReportJson, wallMs: performance.now() - started, cpuSeconds: cpu };
}

export interface GcRun {
  report: GcReportJson;
  wallMs: number;
  /** CPU the pass process used, as a share of one core over its wall time. */
  passCpu: number;
  /** CPU the server used, as a share of one core, without and during the pass. */
  serverCpu: { quiet: number; during: number };
  /** CPU the pushing clients (this process) used, as a share of one core. */
  clientCpu: { quiet: number; during: number };
  /** Share of the machine's CPU time that went idle. */
  idle: { quiet: number; during: number };
  quiet: number;
  during: number;
}

/** One measurement over a seeded data directory: pushes without a pass, then pushes during one. */
interface Phase {
  perSecond: number;
  failures: number;
  /** CPU of the server and of the pushing clients (this process), as shares of one core. */
  serverCpu: number;
  clientCpu: number;
  /** Share of the machine's CPU time that went idle. */
  idle: number;
}

/** Pushes until `done()`, measuring CPU on the side. */
async function phase(server: BenchServer, done: () => boolean, label: string): Promise<Phase> {
  const serverBefore = await cpuSecondsOf(server.pid);
  const clientBefore = process.cpuUsage();
  const machineBefore = await machineCpu();
  const started = performance.now();
  const pushes = await pushWhile(server.url, done, label);
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  return {
    ...pushes,
    serverCpu: ((await cpuSecondsOf(server.pid)) - serverBefore) / seconds,
    clientCpu: (client.user + client.system) / 1e6 / seconds,
    idle: idleShare(machineBefore, await machineCpu()),
  };
}

/**
 * One measurement over a seeded data directory: pushes without a pass, pushes
 * during one, and pushes without one again; the quiet rate is the mean of the
 * two quiet phases, so that a machine that slows down or speeds up over the
 * run does not pass for the pass's effect.
 */
export async function gcRun(dataDir: string, seconds: number, log: (message: string) => void, duty?: number): Promise<GcRun> {
  const server = await startBerth(dataDir);
  try {
    const quietly = async (label: string) => {
      log(`pushing for ${seconds} s without garbage collection`);
      const until = Date.now() + seconds * 1000;
      return phase(server, () => Date.now() > until, label);
    };
    const before = await quietly('quiet');
    await sleep(graceMs + 500);
    log('garbage collection while pushing');
    let finished = false;
    const pass = runPass(dataDir, duty).finally(() => (finished = true));
    const during = await phase(server, () => finished, 'busy');
    const { report, wallMs, cpuSeconds: passCpu } = await pass;
    const after = await quietly('after');
    const failures = before.failures + during.failures + after.failures;
    if (failures > 0) throw new Error(`${failures} pushes failed`);
    const mean = (pick: (phase: Phase) => number) => (pick(before) + pick(after)) / 2;
    const run: GcRun = {
      report,
      wallMs,
      passCpu: passCpu / (wallMs / 1000),
      serverCpu: { quiet: mean((p) => p.serverCpu), during: during.serverCpu },
      clientCpu: { quiet: mean((p) => p.clientCpu), during: during.clientCpu },
      idle: { quiet: mean((p) => p.idle), during: during.idle },
      quiet: mean((p) => p.perSecond),
      during: during.perSecond,
    };
    log(
      `gc: ${JSON.stringify(report)}; pushes ${before.perSecond.toFixed(0)}/s before, ${run.during.toFixed(0)}/s during the pass, ${after.perSecond.toFixed(0)}/s after (${((100 * run.during) / run.quiet).toFixed(0)} %); ` +
        `CPU: pass ${(100 * run.passCpu).toFixed(0)} %, server ${(100 * run.serverCpu.quiet).toFixed(0)} % quiet, ${(100 * run.serverCpu.during).toFixed(0)} % during, ` +
        `clients ${(100 * run.clientCpu.quiet).toFixed(0)} % / ${(100 * run.clientCpu.during).toFixed(0)} %, machine idle ${(100 * run.idle.quiet).toFixed(0)} % / ${(100 * run.idle.during).toFixed(0)} %`,
    );
    return run;
  } finally {
    await server.stop();
  }
}

function gcRows(blobs: number, run: GcRun): Row[] {
  const section = 'gc';
  const { report } = run;
  return [
    { section, metric: `pass over ${blobs} blobs (${report.blobsDeleted} deleted), pushes running`, unit: 'ms', better: 'lower', berth: report.durationMs },
    { section, metric: 'pass including process start-up', unit: 'ms', better: 'lower', berth: run.wallMs },
    { section, metric: `blobs deleted per second`, unit: 'blobs/s', better: 'higher', berth: report.blobsDeleted / (report.durationMs / 1000) },
    { section, metric: `image pushes, ${pushers} clients, no pass running`, unit: 'req/s', better: 'higher', berth: run.quiet },
    {
      section,
      metric: `image pushes, ${pushers} clients, during the pass`,
      unit: 'req/s',
      better: 'higher',
      berth: run.during,
      target: '≥ 90 % of the quiet rate',
      met: run.during >= 0.9 * run.quiet,
    },
  ];
}

/** Seeds `dataDir` through a server of its own. */
async function seedDirectory(dataDir: string, blobs: number, log: (message: string) => void): Promise<void> {
  const server = await startBerth(dataDir);
  try {
    await seed(server.url, blobs, log);
  } finally {
    await server.stop();
  }
}

export async function gcSection(context: BenchContext): Promise<Row[]> {
  const { blobs, seconds } = context.sizes;
  const dataDir = join(context.work, 'gc');
  await seedDirectory(dataDir, blobs, context.log);
  return gcRows(blobs, await gcRun(dataDir, seconds, context.log));
}

// `node bench/gc.ts [--blobs 60000] [--seconds 8] [--runs 3] [--duty 0.25] [--keep-seed]`: seeds once, then
// measures each run on a fresh copy of the seeded data, and prints every run and the ranges.
if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      blobs: { type: 'string', default: '60000' },
      seconds: { type: 'string', default: '8' },
      runs: { type: 'string', default: '3' },
      duty: { type: 'string' },
      out: { type: 'string', default: '.bench' },
      /** Seed into `<out>/gc-seed-<blobs>` and reuse it when present (for repeated invocations). */
      'keep-seed': { type: 'boolean', default: false },
    },
  });
  const blobs = Number(values.blobs);
  const work = join(resolve(values.out), 'work-gc');
  const log = (message: string) => process.stderr.write(`[gc] ${message}\n`);
  await rm(work, { recursive: true, force: true });
  const seeded = values['keep-seed'] ? join(resolve(values.out), `gc-seed-${blobs}`) : join(work, 'seeded');
  if (!values['keep-seed'] || !existsSync(join(seeded, 'berth.db'))) {
    await rm(seeded, { recursive: true, force: true });
    await seedDirectory(seeded, blobs, log);
  }
  const runs: GcRun[] = [];
  for (let index = 0; index < Number(values.runs); index++) {
    const dataDir = join(work, `run${index}`);
    // cp(1) copies tens of thousands of small files many times faster than fs.cp.
    await mkdir(work, { recursive: true });
    await execFileAsync('cp', ['-a', seeded, dataDir]);
    runs.push(await gcRun(dataDir, Number(values.seconds), log, values.duty === undefined ? undefined : Number(values.duty)));
    await rm(dataDir, { recursive: true, force: true });
  }
  const range = (values: number[], scale = 1, digits = 0) => {
    const sorted = values.map((value) => value * scale).sort((a, b) => a - b);
    return `${(sorted[0] ?? 0).toFixed(digits)}–${(sorted[sorted.length - 1] ?? 0).toFixed(digits)}`;
  };
  process.stdout.write(
    [
      `runs: ${runs.length}, blobs: ${blobs}, duty: ${values.duty ?? 'configured default'}`,
      `pushes quiet: ${range(runs.map((run) => run.quiet))}/s; during the pass: ${range(runs.map((run) => run.during))}/s`,
      `during/quiet: ${range(
        runs.map((run) => run.during / run.quiet),
        100,
      )} %`,
      `pass: ${range(
        runs.map((run) => run.report.durationMs / 1000),
        1,
        1,
      )} s; pass CPU ${range(
        runs.map((run) => run.passCpu),
        100,
      )} % of a core`,
      `server CPU: quiet ${range(
        runs.map((run) => run.serverCpu.quiet),
        100,
      )} %, during ${range(
        runs.map((run) => run.serverCpu.during),
        100,
      )} %`,
      '',
    ].join('\n'),
  );
  await rm(work, { recursive: true, force: true });
}
