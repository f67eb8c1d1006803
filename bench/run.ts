// `npm run bench [-- --quick] [-- --no-distribution]`: Berth side by side
// with CNCF Distribution and the machine's own limits, in one run. See
// docs/benchmarks.md.
import { spawnSync } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { curlUpload, durableWrite, opensslSha256, median, repeated } from './measure.ts';
import { gcSection } from './gc.ts';
import { machine, markdown, type Row } from './report.ts';
import { listingSection, loadManyBlobs, manifestSection, pullSection, pushSection, randomFile, type BenchContext, type Sizes } from './sections.ts';
import { startBerth, startDistribution, startNginx, startPlainReceiver, type BenchServer } from './servers.ts';
import { benchArchive, defaultArchiveBenchOptions } from './archive.ts';
import { scaleSection } from './scale.ts';
import { hotPathSection } from './hotpath.ts';
import { workersSection } from './workers.ts';
import { uiSection } from './ui.ts';
import { availableParallelism } from 'node:os';

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    'no-distribution': { type: 'boolean', default: false },
    out: { type: 'string', default: '.bench' },
  },
});

const sizes: Sizes = flags.quick
  ? { bigBlob: 32 * 2 ** 20, smallBlobs: 20, tags: 300, repositories: 300, blobs: 1000, seconds: 2, repeats: 1 }
  : { bigBlob: 512 * 2 ** 20, smallBlobs: 200, tags: 10_000, repositories: 10_000, blobs: 100_000, seconds: 8, repeats: 3 };

/** The first line a tool prints about its version, on stdout or stderr (nginx and wrk use stderr). */
function version(command: string, args: string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error !== undefined) return 'not installed';
  const text = `${result.stdout}\n${result.stderr}`;
  return (
    text
      .split('\n')
      .find((line) => /\d+\.\d+/.test(line))
      ?.trim() ?? 'unknown'
  );
}

const out = resolve(flags.out);
const work = join(out, 'work');
await rm(work, { recursive: true, force: true });
await mkdir(join(work, 'www'), { recursive: true });
const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

const withDistribution = !flags['no-distribution'] && version('docker-registry', ['--version']) !== 'not installed';
const info = machine({
  distribution: withDistribution ? version('docker-registry', ['--version']) : 'not run',
  nginx: version('nginx', ['-v']),
  wrk: version('wrk', ['--version']),
  mode: flags.quick ? 'quick' : 'full',
  date: new Date().toISOString(),
});

log('measuring single-core SHA-256 (OpenSSL)');
const sha256Limit = median([await opensslSha256(2), await opensslSha256(2), await opensslSha256(2)]);
log(`creating a ${sizes.bigBlob / 2 ** 20} MiB blob`);
const bigFile = join(work, 'www', 'big.bin');
const big = { file: bigFile, digest: await randomFile(bigFile, sizes.bigBlob), size: sizes.bigBlob };

const servers: BenchServer[] = [await startBerth(join(work, 'berth'))];
if (withDistribution) servers.push(await startDistribution(join(work, 'distribution')));
const nginx = await startNginx(join(work, 'www'), join(work, 'nginx'));
const context: BenchContext = { sizes, work, servers, nginxUrl: nginx.url, sha256Limit, log };
const rows: Row[] = [];
try {
  rows.push({ section: 'machine', metric: 'SHA-256, one core (OpenSSL)', unit: 'B/s', better: 'higher', berth: sha256Limit });
  const disk = await repeated(3, async () => ({ value: await durableWrite(bigFile, join(work, 'dd.bin')) }));
  rows.push({ section: 'machine', metric: `new ${sizes.bigBlob / 2 ** 20} MiB file written and fsynced (dd)`, unit: 'B/s', better: 'higher', berth: disk.value });
  rows.push(...(await plainNodeReceive(join(work, 'plain'), big)));
  // Peak memory per section: each section starts a new peak.
  const peaks: { section: string; values: Record<string, number> }[] = [];
  const measured = async (section: string, work: () => Promise<Row[]>) => {
    log(section);
    await Promise.all(servers.map((server) => server.resetPeakRss()));
    rows.push(...(await work()));
    const values = Object.fromEntries(await Promise.all(servers.map(async (server) => [server.name, await server.peakRss()] as const)));
    peaks.push({ section, values });
    log(`${section}: peak RSS ${JSON.stringify(values)}`);
  };
  await measured('manifests', () => manifestSection(context));
  log('hot path: Berth (access rules, access log, metrics, a webhook) against a bare node:http server');
  rows.push(...(await hotPathSection({ work, seconds: sizes.seconds, repeats: sizes.repeats, connections: 64, log })));
  await measured('blob push', () => pushSection(context, big));
  log(`workers: 1 and ${availableParallelism()} workers side by side`);
  rows.push(
    ...(await workersSection({
      work,
      big,
      counts: [1, Math.max(2, availableParallelism())],
      smallBlobs: sizes.smallBlobs,
      seconds: sizes.seconds,
      repeats: sizes.repeats,
      withDistribution,
      log,
    })),
  );
  await measured('blob GET', () => pullSection(context, big));
  await measured('listings', () => listingSection(context));
  const scale = flags.quick ? 10_000 : 1_000_000;
  rows.push(...(await scaleSection(context, { tags: scale, repositories: scale, garbage: scale })));
  rows.push(...(await archiveSection(flags.quick ? 100 : 1000, sizes.seconds)));
  log('web UI at scale');
  const ui = await uiSection({ repositories: flags.quick ? 2000 : 100_000, requests: flags.quick ? 50 : 200, sqlite: true, postgres: false, log });
  rows.push(...ui.rows);
  await measured('loading many blobs', async () => {
    await loadManyBlobs(context);
    return [];
  });
  await measured('garbage collection with pushes running', () => gcSection(context));
  for (const { section, values } of peaks) {
    rows.push({
      section: 'memory',
      metric: `peak RSS: ${section}`,
      unit: 'B',
      better: 'lower',
      berth: values['berth'] ?? 0,
      ...(values['distribution'] === undefined ? {} : { distribution: values['distribution'] }),
      target: '≤ 200 MB',
      met: (values['berth'] ?? 0) <= 200e6,
    });
  }
  log('start-up with the data loaded');
  const startup: Record<string, number[]> = {};
  for (let index = 0; index < servers.length; index++) {
    const server = servers[index] as BenchServer;
    for (let attempt = 0; attempt < 3; attempt++) {
      await (servers[index] as BenchServer).stop();
      const restarted = server.name === 'berth' ? await startBerth(join(work, 'berth')) : await startDistribution(join(work, 'distribution'));
      servers[index] = restarted;
      (startup[server.name] ??= []).push(restarted.startupMs);
    }
  }
  const berthStartup = median(startup['berth'] ?? []);
  rows.push({
    section: 'start-up',
    metric: `${sizes.repositories} repositories, ${sizes.blobs} blobs stored`,
    unit: 'ms',
    better: 'lower',
    berth: berthStartup,
    ...(startup['distribution'] === undefined ? {} : { distribution: median(startup['distribution']) }),
    target: '≤ 1 s',
    met: berthStartup <= 1000,
  });
} finally {
  await Promise.all(servers.map((server) => server.stop()));
  await nginx.stop();
}

/** How fast a plain Node HTTP server receives the big blob: dropped, hashed, hashed and written durably. */
async function plainNodeReceive(dir: string, blob: { file: string; size: number }): Promise<Row[]> {
  const receiver = await startPlainReceiver(dir);
  const modes: [string, string][] = [
    ['/drop', 'body dropped'],
    ['/hash', 'SHA-256'],
    ['/durable', 'SHA-256, written to a new file and fsynced'],
  ];
  const rows: Row[] = [];
  try {
    for (const [path, what] of modes) {
      const received = await repeated(3, async () => {
        const started = performance.now();
        const { status } = await curlUpload('PUT', `${receiver.url}${path}`, blob.file);
        if (status !== 201) throw new Error(`plain Node receiver ${path}: ${status}`);
        return { value: blob.size / ((performance.now() - started) / 1000) };
      });
      rows.push({ section: 'machine', metric: `plain Node HTTP server receiving ${blob.size / 2 ** 20} MiB: ${what}`, unit: 'B/s', better: 'higher', berth: received.value });
    }
  } finally {
    await receiver.stop();
  }
  return rows;
}

/** Archive repositories (Berth only): indexing, and blob GETs from archives against the hosted store. */
async function archiveSection(archives: number, seconds: number): Promise<Row[]> {
  const result = await benchArchive({ ...defaultArchiveBenchOptions, archives, seconds });
  const { indexing, blobGet } = result;
  const mib = blobGet.blobBytes / 2 ** 20;
  const fromArchive = (metric: string, value: { mebibytesPerSecond: number }): Row => ({
    section: 'archive',
    metric: `${metric}, ${mib} MiB blob, ${blobGet.connections} conn`,
    unit: 'B/s',
    better: 'higher',
    berth: value.mebibytesPerSecond * 2 ** 20,
    reference: blobGet.hosted.mebibytesPerSecond * 2 ** 20,
    referenceName: 'hosted store',
  });
  return [
    { section: 'archive', metric: `index ${indexing.archives} archives, cold (${indexing.failed} failed)`, unit: 'ms', better: 'lower', berth: indexing.coldMs },
    { section: 'archive', metric: 'rescan with nothing changed', unit: 'ms', better: 'lower', berth: indexing.warmRescanMs },
    fromArchive('blob GET from a tar byte range', blobGet.archiveTar),
    fromArchive('blob GET from a gzip archive (extracted once)', blobGet.archiveGzip),
  ];
}

const report = markdown(rows, info);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
await writeFile(join(out, `results-${stamp}.md`), report);
await writeFile(join(out, `results-${stamp}.json`), `${JSON.stringify({ machine: info, sizes, rows }, null, 2)}\n`);
process.stdout.write(report);
log(`written to ${join(out, `results-${stamp}.md`)} and .json`);
await rm(work, { recursive: true, force: true });
