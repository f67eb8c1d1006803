// The push rows alone, quickly: Berth, Distribution and the plain Node
// receiver (bench/plain-receiver.ts) side by side, round after round, each
// round measuring every server once per row so that ratios compare runs
// seconds apart. Prints each round and the range over rounds.
//
//   flock /work/bench.lock npx node bench/push.ts [--rows mono,chunked,small]
//     [--rounds 3] [--size MIB] [--small N] [--no-distribution]
//     [--profile DIR] [--baseline CHECKOUT]
//
// --baseline runs a second Berth from another checkout (say, `git archive`
// of main unpacked beside this one) in the same rounds, named "baseline".
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { randomFile } from './sections.ts';
import { chunkedPush, monolithicPush, plainReceive, smallPushes, withCpu, type BigBlob, type SmallBlob } from './pushes.ts';
import { startBerth, startDistribution, startPlainReceiver, type BenchServer } from './servers.ts';
import { startBerthFrom } from './pushes.ts';

const { values: flags } = parseArgs({
  options: {
    rows: { type: 'string', default: 'mono,chunked,small' },
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '512' },
    small: { type: 'string', default: '200' },
    'no-distribution': { type: 'boolean', default: false },
    profile: { type: 'string' },
    baseline: { type: 'string' },
    out: { type: 'string', default: '.bench-push' },
  },
});

const rows = new Set(flags.rows.split(','));
const rounds = Number(flags.rounds);
const log = (message: string) => process.stderr.write(`[push] ${message}\n`);
const work = resolve(flags.out);
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

const size = Number(flags.size) * 2 ** 20;
const bigFile = join(work, 'big.bin');
const big: BigBlob = { file: bigFile, digest: await randomFile(bigFile, size), size };
const small: SmallBlob[] = [];
if (rows.has('small')) {
  await mkdir(join(work, 'small'), { recursive: true });
  for (let index = 0; index < Number(flags.small); index++) {
    const file = join(work, 'small', `${index}.bin`);
    small.push({ file, digest: await randomFile(file, 2 ** 20) });
  }
}

const profileFlags = flags.profile === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(flags.profile)}`];
const berth = await startBerth(join(work, 'berth'), [], profileFlags);
const distribution = flags['no-distribution'] ? undefined : await startDistribution(join(work, 'distribution'));
const plain = await startPlainReceiver(join(work, 'plain'));
const baseline = flags.baseline === undefined ? undefined : await startBerthFrom(resolve(flags.baseline), join(work, 'baseline'));
const servers: BenchServer[] = [berth, ...(baseline === undefined ? [] : [baseline]), ...(distribution === undefined ? [] : [distribution])];

type Figures = Record<string, number>;
const results: Record<string, Figures[]> = {};
const peaks: Record<string, number[]> = {};
const mb = (value: number) => `${(value / 1e6).toFixed(0)} MB/s`;
const show = (figures: Figures) =>
  Object.entries(figures)
    .map(([name, value]) => `${name} ${name.endsWith('cpu') ? `${value.toFixed(2)} s` : mb(value)}`)
    .join(', ');

try {
  for (let round = 1; round <= rounds; round++) {
    if (rows.has('mono') || rows.has('chunked')) {
      for (const [row, push] of [
        ['mono', monolithicPush],
        ['chunked', chunkedPush],
      ] as const) {
        if (!rows.has(row)) continue;
        // The ceiling is measured beside each row: the shared machine's load moves it from minute to minute.
        const plainRun = await withCpu(plain.pid, () => plainReceive(plain.url, big, '/durable'));
        const batchedRun = await withCpu(plain.pid, () => plainReceive(plain.url, big, '/batched'));
        const ceiling = plainRun.value;
        const figures: Figures = { ceiling, 'ceiling cpu': plainRun.cpu, batched: batchedRun.value, 'batched cpu': batchedRun.cpu };
        for (const server of servers) {
          await server.resetPeakRss();
          const run = await withCpu(server.pid, () => push(server.url, big));
          figures[server.name] = run.value;
          figures[`${server.name} cpu`] = run.cpu;
          if (server.name !== 'distribution') (peaks[server.name] ??= []).push(await server.peakRss());
        }
        (results[row] ??= []).push(figures);
        log(`round ${round} ${row}: ${show(figures)}; berth/ceiling ${(((figures['berth'] ?? 0) / ceiling) * 100).toFixed(0)} %`);
      }
    }
    if (rows.has('small')) {
      const figures: Figures = {};
      for (const server of servers) {
        const run = await withCpu(server.pid, () => smallPushes(server.url, small, join(work, 'small-curl'), server.name));
        figures[server.name] = run.value;
        figures[`${server.name} cpu`] = run.cpu;
      }
      (results['small'] ??= []).push(figures);
      const ratio = figures['distribution'] === undefined ? '' : `; berth/distribution ${((figures['berth'] ?? 0) / figures['distribution']).toFixed(2)}×`;
      log(`round ${round} small: ${show(figures)}${ratio}`);
    }
  }
} finally {
  await Promise.all([...servers, plain].map((server) => server.stop()));
}

const range = (values: number[], format: (value: number) => string) => `${format(Math.min(...values))}–${format(Math.max(...values))}`;
const lines: string[] = [];
for (const [row, list] of Object.entries(results)) {
  const of = (name: string) => list.map((figures) => figures[name] ?? Number.NaN);
  const seconds = (value: number) => `${value.toFixed(2)} s`;
  const parts = [`${row}: berth ${range(of('berth'), mb)} (CPU ${range(of('berth cpu'), seconds)})`];
  if (list[0]?.['baseline'] !== undefined) {
    parts.push(`baseline ${range(of('baseline'), mb)} (CPU ${range(of('baseline cpu'), seconds)})`);
    parts.push(
      `berth/baseline ${range(
        list.map((f) => (f['berth'] ?? 0) / (f['baseline'] ?? 1)),
        (v) => `${v.toFixed(2)}×`,
      )}`,
    );
  }
  if (list[0]?.['distribution'] !== undefined) {
    parts.push(`distribution ${range(of('distribution'), mb)} (CPU ${range(of('distribution cpu'), seconds)})`);
    parts.push(
      `berth/distribution ${range(
        list.map((f) => (f['berth'] ?? 0) / (f['distribution'] ?? 1)),
        (v) => `${v.toFixed(2)}×`,
      )}`,
    );
  }
  if (list[0]?.['ceiling'] !== undefined) {
    parts.push(`plain-node ceiling ${range(of('ceiling'), mb)} (CPU ${range(of('ceiling cpu'), seconds)})`);
    parts.push(
      `berth/ceiling ${range(
        list.map((f) => (f['berth'] ?? 0) / (f['ceiling'] ?? 1)),
        (v) => `${(v * 100).toFixed(0)} %`,
      )}`,
    );
    parts.push(`plain-node batched ${range(of('batched'), mb)} (CPU ${range(of('batched cpu'), seconds)})`);
    const ofBatched = list.map((f) => (f['berth'] ?? 0) / (f['batched'] ?? 1));
    parts.push(`berth/batched ${range(ofBatched, (v) => `${(v * 100).toFixed(0)} %`)}`);
  }
  lines.push(parts.join(', '));
}
for (const [name, list] of Object.entries(peaks)) lines.push(`${name} peak RSS pushing one big blob: ${range(list, (v) => `${(v / 2 ** 20).toFixed(0)} MiB`)}`);
process.stdout.write(`${lines.join('\n')}\n`);
await rm(work, { recursive: true, force: true });
