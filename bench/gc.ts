// Garbage collection while pushes run: a pass over `blobs` stored blobs
// (half of them garbage), its duration, and push throughput during the
// pass against push throughput without one. See docs/operations.md.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { benchImage, ociManifest, pool, pushBlob, putManifest } from './load.ts';
import type { Row } from './report.ts';
import type { BenchContext } from './sections.ts';
import { startBerth } from './servers.ts';

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

/** Runs `berth gc --json` beside the server; its report and wall time. */
async function runPass(dataDir: string): Promise<{ report: GcReportJson; wallMs: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [berthMain, 'gc', '--json', '--data', dataDir], {
    env: { PATH: process.env['PATH'], BERTH_GC_GRACE_PERIOD: `${graceMs}ms`, BERTH_GC_INTERVAL: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`berth gc exited with ${code}`);
  return { report: JSON.parse(output) as GcReportJson, wallMs: performance.now() - started };
}

export async function gcSection(context: BenchContext): Promise<Row[]> {
  const { blobs, seconds } = context.sizes;
  const dataDir = join(context.work, 'gc');
  const server = await startBerth(dataDir);
  try {
    await seed(server.url, blobs, context.log);
    context.log(`pushing for ${seconds} s without garbage collection`);
    const until = Date.now() + seconds * 1000;
    const baseline = await pushWhile(server.url, () => Date.now() > until, 'quiet');
    await sleep(graceMs + 500);
    context.log(`garbage collection over ${blobs} blobs while pushing`);
    let finished = false;
    const pass = runPass(dataDir).finally(() => (finished = true));
    const during = await pushWhile(server.url, () => finished, 'busy');
    const { report, wallMs } = await pass;
    context.log(`gc: ${JSON.stringify(report)}; pushes ${baseline.perSecond.toFixed(0)}/s quiet, ${during.perSecond.toFixed(0)}/s during the pass`);
    if (baseline.failures + during.failures > 0) throw new Error(`${baseline.failures + during.failures} pushes failed`);
    const section = 'gc';
    return [
      { section, metric: `pass over ${blobs} blobs (${report.blobsDeleted} deleted), pushes running`, unit: 'ms', better: 'lower', berth: report.durationMs },
      { section, metric: 'pass including process start-up', unit: 'ms', better: 'lower', berth: wallMs },
      { section, metric: `blobs deleted per second`, unit: 'blobs/s', better: 'higher', berth: report.blobsDeleted / (report.durationMs / 1000) },
      { section, metric: `image pushes, ${pushers} clients, no pass running`, unit: 'req/s', better: 'higher', berth: baseline.perSecond },
      {
        section,
        metric: `image pushes, ${pushers} clients, during the pass`,
        unit: 'req/s',
        better: 'higher',
        berth: during.perSecond,
        target: '≥ 90 % of the quiet rate',
        met: during.perSecond >= 0.9 * baseline.perSecond,
      },
    ];
  } finally {
    await server.stop();
  }
}
