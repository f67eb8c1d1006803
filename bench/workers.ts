// Workers: the figures that depend on how many threads serve, with 1 and with N workers, beside Distribution.
// Alone: `node bench/workers.ts [--quick] [--workers N] [--repeats R] [--seconds S]`.
import { availableParallelism } from 'node:os';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { benchImage, ociManifest, pool, pushImage, startUpload } from './load.ts';
import { abHead, cpuSecondsOf, curlParallelPuts, curlUpload, idleShare, machineCpu, median, opensslSha256, repeated, wrk } from './measure.ts';
import { markdown, machine, type Row } from './report.ts';
import { randomFile, type BigBlob } from './sections.ts';
import { startBerth, startDistribution, type BenchServer } from './servers.ts';

export interface WorkersBenchOptions {
  work: string;
  big: BigBlob;
  /** Worker counts to compare, the first being the baseline (1). */
  counts: number[];
  smallBlobs: number;
  seconds: number;
  repeats: number;
  withDistribution: boolean;
  log(message: string): void;
}

interface Figures {
  get: number;
  head: number;
  /** CPU seconds (every thread of the server) per thousand requests. */
  getCpu: number;
  headCpu: number;
  push: number;
  pushes4: number;
  /** During the 4 pushes: cores Berth kept busy, and the share of the machine's CPU in use. */
  pushes4Cores: number;
  pushes4MachineBusy: number;
  small: number;
  rss: number;
}

const labels: Record<keyof Figures, { metric: string; unit: string; better: 'higher' | 'lower' }> = {
  get: { metric: 'manifest GET by tag, 64 conn', unit: 'req/s', better: 'higher' },
  head: { metric: 'manifest HEAD by tag, 64 conn', unit: 'req/s', better: 'higher' },
  getCpu: { metric: 'manifest GET by tag: server CPU per 1,000 requests', unit: 's', better: 'lower' },
  headCpu: { metric: 'manifest HEAD by tag: server CPU per 1,000 requests', unit: 's', better: 'lower' },
  push: { metric: 'monolithic push, one at a time', unit: 'B/s', better: 'higher' },
  pushes4: { metric: 'monolithic pushes, 4 at once (aggregate)', unit: 'B/s', better: 'higher' },
  pushes4Cores: { metric: '4 pushes at once: cores the server kept busy', unit: 'cores', better: 'higher' },
  pushes4MachineBusy: { metric: '4 pushes at once: share of the machine busy (server, clients, kernel)', unit: '%', better: 'higher' },
  small: { metric: '1 MiB pushes, 4 at a time', unit: 'B/s', better: 'higher' },
  rss: { metric: 'peak RSS over the section, all threads', unit: 'B', better: 'lower' },
};

/**
 * Each figure with 1 worker and with N (the CPUs this process may use),
 * Distribution measured once beside them; then how each scales from 1 to
 * N, and the targets: GET and HEAD at N workers ≥ 8× Distribution, 4
 * concurrent pushes at N ≥ 1.8× one worker's, RSS at N ≤ 2× one worker's.
 */
export async function workersSection(options: WorkersBenchOptions): Promise<Row[]> {
  const { counts, log } = options;
  const small = await smallFiles(options);
  const berth = new Map<number, Figures>();
  for (const count of counts) {
    log(`workers: Berth with ${count} worker${count === 1 ? '' : 's'}`);
    const server = await startBerth(join(options.work, `berth-workers-${count}`), ['--workers', String(count)]);
    try {
      berth.set(count, await measure(server, options, small));
    } finally {
      await server.stop();
    }
    log(`workers ${count}: ${JSON.stringify(berth.get(count))}`);
  }
  let distribution: Figures | undefined;
  if (options.withDistribution) {
    const server = await startDistribution(join(options.work, 'distribution-workers'));
    try {
      distribution = await measure(server, options, small);
    } finally {
      await server.stop();
    }
    log(`workers, Distribution: ${JSON.stringify(distribution)}`);
  }
  return rowsOf(berth, distribution, counts);
}

async function measure(server: BenchServer, options: WorkersBenchOptions, small: { file: string; digest: string }[]): Promise<Figures> {
  const { big, seconds, repeats } = options;
  await server.resetPeakRss();
  const image = benchImage();
  await pushImage(server.url, 'bench/app', 'latest', image);
  const load = { connections: 64, seconds, headers: { accept: ociManifest }, scriptDir: options.work };
  const url = `${server.url}/v2/bench/app/manifests/latest`;
  const withCpuPerThousand = async (run: () => Promise<{ requestsPerSecond: number; requests: number }>) => {
    const before = await cpuSecondsOf(server.pid);
    const result = await run();
    return { value: result.requestsPerSecond, cpu: (1000 * ((await cpuSecondsOf(server.pid)) - before)) / result.requests };
  };
  const get = await repeated(repeats, () => withCpuPerThousand(() => wrk(url, load)));
  const head = await repeated(repeats, () => withCpuPerThousand(() => abHead(url, load)));
  const pushOnce = async (repository: string) => {
    const target = await startUpload(server.url, repository);
    target.searchParams.set('digest', big.digest);
    const { status } = await curlUpload('PUT', target.toString(), big.file);
    if (status !== 201) throw new Error(`${server.name} push to ${repository}: ${status}`);
  };
  const push = (
    await repeated(repeats, async () => {
      const started = performance.now();
      await pushOnce('bench/one');
      return { value: big.size / ((performance.now() - started) / 1000) };
    })
  ).value;
  const four = await repeated(repeats, async () => {
    const started = performance.now();
    const [cpuBefore, machineBefore] = [await cpuSecondsOf(server.pid), await machineCpu()];
    await Promise.all([0, 1, 2, 3].map((index) => pushOnce(`bench/four-${index}`)));
    const seconds = (performance.now() - started) / 1000;
    const cores = ((await cpuSecondsOf(server.pid)) - cpuBefore) / seconds;
    return { value: (4 * big.size) / seconds, cores, busy: 100 * (1 - idleShare(machineBefore, await machineCpu())) };
  });
  const smallPushes = (
    await repeated(repeats, async () => {
      const started = performance.now();
      const uploads: { url: string; file: string }[] = [];
      await pool(small, 4, async ({ file, digest }) => {
        const target = await startUpload(server.url, 'bench/small');
        target.searchParams.set('digest', digest);
        uploads.push({ url: target.toString(), file });
      });
      const statuses = await curlParallelPuts(uploads, 4, join(options.work, `small-${server.pid}.curl`));
      if (statuses.some((status) => status !== 201)) throw new Error(`${server.name} small pushes: ${statuses.join(' ')}`);
      return { value: (small.length * 2 ** 20) / ((performance.now() - started) / 1000) };
    })
  ).value;
  return {
    get: get.value,
    head: head.value,
    getCpu: get.cpu,
    headCpu: head.cpu,
    push,
    pushes4: four.value,
    pushes4Cores: four.cores,
    pushes4MachineBusy: four.busy,
    small: smallPushes,
    rss: await server.peakRss(),
  };
}

async function smallFiles(options: WorkersBenchOptions): Promise<{ file: string; digest: string }[]> {
  const dir = join(options.work, 'workers-small');
  await mkdir(dir, { recursive: true });
  return Promise.all(
    Array.from({ length: options.smallBlobs }, async (_, index) => {
      const file = join(dir, `${index}.bin`);
      return { file, digest: await randomFile(file, 2 ** 20) };
    }),
  );
}

function rowsOf(berth: Map<number, Figures>, distribution: Figures | undefined, counts: number[]): Row[] {
  const rows: Row[] = [];
  const one = berth.get(counts[0] as number) as Figures;
  const many = counts[counts.length - 1] as number;
  const top = berth.get(many) as Figures;
  for (const key of Object.keys(labels) as (keyof Figures)[]) {
    const { metric, unit, better } = labels[key];
    for (const count of counts) {
      const value = (berth.get(count) as Figures)[key];
      const row: Row = { section: 'workers', metric: `${metric}, ${count} worker${count === 1 ? '' : 's'}`, unit, better, berth: value };
      if (distribution !== undefined && key !== 'rss' && key !== 'pushes4MachineBusy') row.distribution = distribution[key];
      if (count === many && (key === 'get' || key === 'head') && distribution !== undefined) {
        row.target = '≥ 8× Distribution';
        row.met = value >= 8 * distribution[key];
      }
      rows.push(row);
    }
    if (key === 'pushes4Cores' || key === 'pushes4MachineBusy' || key === 'getCpu' || key === 'headCpu') continue;
    const scaling = top[key] / one[key];
    const row: Row = { section: 'workers', metric: `${metric}: ${many} workers ÷ 1`, unit: '×', better: 'higher', berth: scaling };
    if (key === 'pushes4') Object.assign(row, { target: '≥ 1.8×', met: scaling >= 1.8 });
    if (key === 'rss') Object.assign(row, { target: '≤ 2×', met: scaling <= 2 });
    rows.push(row);
    if ((key === 'get' || key === 'head') && distribution !== undefined && many > 1) {
      const cpu = key === 'get' ? 'getCpu' : 'headCpu';
      rows.push({
        section: 'workers',
        metric: `${metric}: 16-core model, Berth ÷ Distribution (requests per CPU-second at ${many} workers; docs/benchmarks.md)`,
        unit: '×',
        better: 'higher',
        berth: distribution[cpu] / top[cpu],
      });
    }
  }
  return rows;
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      workers: { type: 'string', default: String(availableParallelism()) },
      repeats: { type: 'string' },
      seconds: { type: 'string' },
      'no-distribution': { type: 'boolean', default: false },
      out: { type: 'string', default: '.bench' },
    },
  });
  const work = join(resolve(flags.out), 'work-workers');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);
  const size = flags.quick ? 32 * 2 ** 20 : 512 * 2 ** 20;
  const bigFile = join(work, 'big.bin');
  const big = { file: bigFile, digest: await randomFile(bigFile, size), size };
  const sha256 = median([await opensslSha256(1), await opensslSha256(1), await opensslSha256(1)]);
  const rows = await workersSection({
    work,
    big,
    counts: [1, Number(flags.workers)],
    smallBlobs: flags.quick ? 20 : 200,
    seconds: Number(flags.seconds ?? (flags.quick ? 2 : 8)),
    repeats: Number(flags.repeats ?? (flags.quick ? 1 : 3)),
    withDistribution: !flags['no-distribution'],
    log,
  });
  process.stdout.write(markdown(rows, machine({ 'sha-256, one core': `${(sha256 / 1e6).toFixed(0)} MB/s`, date: new Date().toISOString() })));
  await rm(work, { recursive: true, force: true });
}
