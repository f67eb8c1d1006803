import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { benchImage, mountBlob, ociManifest, pool, pushBlob, pushImage, putManifest, resolveLocation, sha256 } from './load.ts';
import { abHead, concurrentDownloads, curlDownload, repeated, wrk } from './measure.ts';
import { chunkedPush, monolithicPush, plainReceive, smallPushes, type BigBlob } from './pushes.ts';
import type { Row } from './report.ts';
import { startPlainReceiver, type BenchServer } from './servers.ts';

export interface Sizes {
  bigBlob: number;
  smallBlobs: number;
  tags: number;
  repositories: number;
  blobs: number;
  seconds: number;
  repeats: number;
}

export interface BenchContext {
  sizes: Sizes;
  work: string;
  servers: BenchServer[];
  nginxUrl?: string;
  sha256Limit: number;
  log(message: string): void;
}

const berthOf = (context: BenchContext) => context.servers.find((server) => server.name === 'berth') as BenchServer;
const distributionOf = (context: BenchContext) => context.servers.find((server) => server.name === 'distribution');

/** Measures `measure` on every server and makes one row of it. */
async function sideBySide(context: BenchContext, row: Omit<Row, 'berth' | 'distribution'>, measure: (server: BenchServer) => Promise<number>): Promise<Row> {
  const values: Record<string, number> = {};
  for (const server of context.servers) {
    values[server.name] = (await repeated(context.sizes.repeats, async () => ({ value: await measure(server) }))).value;
  }
  context.log(`${row.section} ${row.metric}: ${JSON.stringify(values)}`);
  const result: Row = { ...row, berth: values['berth'] as number };
  if (values['distribution'] !== undefined) result.distribution = values['distribution'];
  return result;
}

function judge(row: Row, check: (row: Row) => boolean | undefined): Row {
  const met = check(row);
  return met === undefined ? row : { ...row, met };
}

export async function manifestSection(context: BenchContext): Promise<Row[]> {
  const image = benchImage();
  for (const server of context.servers) await pushImage(server.url, 'bench/app', 'latest', image);
  const rows: Row[] = [];
  for (const method of ['GET', 'HEAD'] as const) {
    for (const by of ['tag', 'digest'] as const) {
      for (const connections of [1, 64]) {
        const results: Record<string, { requestsPerSecond: number; p50Ms: number; p99Ms: number }> = {};
        for (const server of context.servers) {
          const reference = by === 'tag' ? 'latest' : image.digest;
          results[server.name] = await repeated(context.sizes.repeats, async () => ({
            ...(await (method === 'HEAD' ? abHead : wrk)(`${server.url}/v2/bench/app/manifests/${reference}`, {
              connections,
              seconds: context.sizes.seconds,
              headers: { accept: ociManifest },
              scriptDir: context.work,
            })),
          }));
        }
        context.log(`manifest ${method} by ${by} @${connections}: ${JSON.stringify(results)}`);
        const berth = results['berth'] as { requestsPerSecond: number; p50Ms: number; p99Ms: number };
        const distribution = results['distribution'];
        const section = 'manifest';
        const label = `${method} by ${by}, ${connections} conn`;
        const base = (metric: string, unit: string, better: 'higher' | 'lower', key: 'requestsPerSecond' | 'p50Ms' | 'p99Ms'): Row => ({
          section,
          metric: `${label}: ${metric}`,
          unit,
          better,
          berth: berth[key],
          ...(distribution === undefined ? {} : { distribution: distribution[key] }),
        });
        rows.push(
          judge({ ...base('throughput', 'req/s', 'higher', 'requestsPerSecond'), target: '≥ 5× Distribution' }, (row) =>
            row.distribution === undefined ? undefined : row.berth >= 5 * row.distribution,
          ),
        );
        rows.push(base('p50', 'ms', 'lower', 'p50Ms'));
        rows.push(
          judge({ ...base('p99', 'ms', 'lower', 'p99Ms'), target: 'no worse than Distribution' }, (row) =>
            row.distribution === undefined ? undefined : row.berth <= row.distribution,
          ),
        );
      }
    }
  }
  return rows;
}

/** Writes `bytes` of random data to a file, returning its digest. */
async function randomFile(path: string, bytes: number): Promise<string> {
  const hash = createHash('sha256');
  const output = createWriteStream(path);
  const chunk = 8 * 1024 * 1024;
  for (let written = 0; written < bytes; written += chunk) {
    const data = randomBytes(Math.min(chunk, bytes - written));
    hash.update(data);
    if (!output.write(data)) await new Promise<void>((resolve) => output.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => output.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return `sha256:${hash.digest('hex')}`;
}

export type { BigBlob } from './pushes.ts';

/**
 * Pushes: 512 MiB monolithic and chunked, judged against a plain Node server
 * receiving, hashing and durably writing the same body (measured beside each
 * row, since a shared machine's load moves it), and many 1 MiB blobs 4 at a
 * time against Distribution.
 */
export async function pushSection(context: BenchContext, big: BigBlob): Promise<Row[]> {
  const rows: Row[] = [];
  const plain = await startPlainReceiver(join(context.work, 'plain-push'));
  const ceiling = async () => (await repeated(context.sizes.repeats, async () => ({ value: await plainReceive(plain.url, big, '/durable') }))).value;
  const referenceName = 'plain Node: receive, SHA-256, fsync';
  const nearCeiling = (row: Row) => (row.reference === undefined ? undefined : row.berth >= 0.9 * row.reference);
  try {
    const mib = big.size / 2 ** 20;
    const monolithicCeiling = await ceiling();
    const monolithic = await sideBySide(context, { section: 'blob push', metric: `monolithic PUT, ${mib} MiB`, unit: 'B/s', better: 'higher' }, (server) =>
      monolithicPush(server.url, big),
    );
    rows.push(judge({ ...monolithic, reference: monolithicCeiling, referenceName, target: '≥ 90 % of plain Node' }, nearCeiling));
    const chunkedCeiling = await ceiling();
    const chunked = await sideBySide(context, { section: 'blob push', metric: `POST + PATCH + PUT, ${mib} MiB`, unit: 'B/s', better: 'higher' }, (server) =>
      chunkedPush(server.url, big),
    );
    rows.push(judge({ ...chunked, reference: chunkedCeiling, referenceName, target: '≥ 90 % of plain Node' }, nearCeiling));
  } finally {
    await plain.stop();
  }
  await mkdir(join(context.work, 'small'), { recursive: true });
  const smallFiles = await Promise.all(
    Array.from({ length: context.sizes.smallBlobs }, async (_, index) => {
      const file = join(context.work, 'small', `${index}.bin`);
      return { file, digest: await randomFile(file, 2 ** 20) };
    }),
  );
  const small = await sideBySide(
    context,
    { section: 'blob push', metric: `${context.sizes.smallBlobs} × 1 MiB (POST + PUT), 4 at a time`, unit: 'B/s', better: 'higher' },
    (server) => smallPushes(server.url, smallFiles, join(context.work, 'small'), server.name),
  );
  rows.push(judge({ ...small, target: '≥ 2× Distribution' }, (row) => (row.distribution === undefined ? undefined : row.berth >= 2 * row.distribution)));
  return rows;
}

export async function pullSection(context: BenchContext, big: BigBlob): Promise<Row[]> {
  const rows: Row[] = [];
  const nginxBig = context.nginxUrl === undefined ? undefined : `${context.nginxUrl}/big.bin`;
  const one = await sideBySide(context, { section: 'blob GET', metric: `1 stream, ${big.size / 2 ** 20} MiB`, unit: 'B/s', better: 'higher' }, (server) =>
    curlDownload(`${server.url}/v2/bench/big/blobs/${big.digest}`),
  );
  if (nginxBig !== undefined)
    Object.assign(one, { reference: (await repeated(context.sizes.repeats, async () => ({ v: await curlDownload(nginxBig) }))).v, referenceName: 'nginx' });
  rows.push(judge({ ...one, target: '≥ 1.0× Distribution' }, (row) => (row.distribution === undefined ? undefined : row.berth >= row.distribution)));
  const four = await sideBySide(context, { section: 'blob GET', metric: `4 streams, ${big.size / 2 ** 20} MiB each`, unit: 'B/s', better: 'higher' }, (server) =>
    concurrentDownloads(`${server.url}/v2/bench/big/blobs/${big.digest}`, 4, big.size),
  );
  if (nginxBig !== undefined) {
    Object.assign(four, { reference: (await repeated(context.sizes.repeats, async () => ({ v: await concurrentDownloads(nginxBig, 4, big.size) }))).v, referenceName: 'nginx' });
  }
  rows.push(judge({ ...four, target: '≥ 90 % of nginx' }, (row) => (row.reference === undefined ? undefined : row.berth >= 0.9 * row.reference)));
  const smallDigests: string[] = [];
  const blobs = Array.from({ length: 50 }, () => randomBytes(2 ** 20));
  for (const server of context.servers) {
    for (const blob of blobs) await pushBlob(server.url, 'bench/small', blob);
  }
  for (const blob of blobs) smallDigests.push(sha256(blob));
  const small = await sideBySide(context, { section: 'blob GET', metric: '1 MiB blobs, 8 conn', unit: 'B/s', better: 'higher' }, async (server) => {
    const result = await wrk(`${server.url}/`, {
      connections: 8,
      seconds: context.sizes.seconds,
      paths: smallDigests.map((digest) => `/v2/bench/small/blobs/${digest}`),
      scriptDir: context.work,
    });
    return result.requestsPerSecond * 2 ** 20;
  });
  rows.push(small);
  return rows;
}

/** Follows Link headers from `path` to the end; milliseconds for the whole walk and entries seen. */
async function walk(base: string, path: string, key: 'tags' | 'repositories'): Promise<{ ms: number; entries: number; requests: number }> {
  const started = performance.now();
  let next: string | undefined = path;
  let entries = 0;
  let requests = 0;
  while (next !== undefined) {
    const response: Response = await fetch(resolveLocation(base, next));
    if (response.status !== 200) throw new Error(`GET ${next}: ${response.status} ${await response.text()}`);
    entries += ((await response.json()) as Record<string, string[]>)[key]?.length ?? 0;
    requests++;
    next = /<([^>]+)>;\s*rel="next"/.exec(response.headers.get('link') ?? '')?.[1];
  }
  return { ms: performance.now() - started, entries, requests };
}

export async function listingSection(context: BenchContext): Promise<Row[]> {
  const image = benchImage();
  const { tags, repositories } = context.sizes;
  for (const server of context.servers) {
    context.log(`loading ${tags} tags and ${repositories} repositories into ${server.name}`);
    await pushImage(server.url, 'bench/tags', 'seed', image);
    await pool(
      Array.from({ length: tags }, (_, index) => `t${String(index).padStart(6, '0')}`),
      16,
      (tag) => putManifest(server.url, 'bench/tags', tag, image.manifest, ociManifest),
    );
    await pool(
      Array.from({ length: repositories }, (_, index) => `bench/repos/r${String(index).padStart(6, '0')}`),
      16,
      async (repository) => {
        await mountBlob(server.url, repository, image.configDigest, 'bench/tags');
        await mountBlob(server.url, repository, image.layerDigest, 'bench/tags');
        await putManifest(server.url, repository, 'latest', image.manifest, ociManifest);
      },
    );
  }
  const rows: Row[] = [];
  // A whole list is one request: wrk at one connection measures its latency
  // without a JavaScript client's parse time in the figure.
  const whole: [string, string, 'tags' | 'repositories'][] = [
    [`tag list, ${tags} tags, whole list`, '/v2/bench/tags/tags/list', 'tags'],
    [`catalog, ${repositories}+ repos, whole list`, `/v2/_catalog?n=${repositories + 100}`, 'repositories'],
  ];
  for (const [metric, path, key] of whole) {
    const row = await sideBySide(context, { section: 'listing', metric: `${metric}, p50 of one request`, unit: 'ms', better: 'lower' }, async (server) => {
      let target = path;
      // Distribution caps n (1000 by default) and refuses more: its whole catalog is then several pages, walked below.
      const probe = await walk(server.url, target, key).catch(() => undefined);
      if (probe === undefined) target = path.replace(/n=\d+/, 'n=1000');
      const seen = probe ?? (await walk(server.url, target, key));
      context.log(`${server.name} ${metric}: ${seen.entries} entries in ${seen.requests} requests`);
      if (seen.requests > 1) return seen.ms;
      return (await wrk(`${server.url}${target}`, { connections: 1, seconds: context.sizes.seconds, scriptDir: context.work })).p50Ms;
    });
    rows.push(judge({ ...row, target: '≥ 10× faster than Distribution' }, (it) => (it.distribution === undefined ? undefined : it.distribution >= 10 * it.berth)));
  }
  // Paged walks follow Link from the first page to the last, as clients do.
  const paged: [string, string, 'tags' | 'repositories'][] = [
    [`tag list, ${tags} tags, n=100 pages walked`, '/v2/bench/tags/tags/list?n=100', 'tags'],
    [`catalog, ${repositories}+ repos, n=100 pages walked`, '/v2/_catalog?n=100', 'repositories'],
  ];
  for (const [metric, path, key] of paged) {
    const requests: Record<string, number> = {};
    const row = await sideBySide(context, { section: 'listing', metric, unit: 'ms', better: 'lower' }, async (server) => {
      const result = await walk(server.url, path, key);
      context.log(`${server.name} ${metric}: ${result.entries} entries in ${result.requests} requests`);
      requests[server.name] = result.requests;
      return result.ms;
    });
    // Distribution 2.8 ignores n on tag lists and answers the whole list at once:
    // a walk of one request against a walk of many is not a comparison.
    const comparable = requests['distribution'] === undefined || requests['distribution'] === requests['berth'];
    const named = comparable ? row : { ...row, metric: `${metric} (Distribution ignored n: ${requests['distribution']} request against ${requests['berth']})` };
    rows.push(judge({ ...named, target: '≥ 10× faster than Distribution' }, (it) => (it.distribution === undefined || !comparable ? undefined : it.distribution >= 10 * it.berth)));
  }
  return rows;
}

/** Pushes many small distinct blobs across the catalog's repositories (for the start-up measurement). */
export async function loadManyBlobs(context: BenchContext): Promise<void> {
  const { blobs, repositories } = context.sizes;
  for (const server of context.servers) {
    context.log(`loading ${blobs} blobs into ${server.name}`);
    await pool(
      Array.from({ length: blobs }, (_, index) => index),
      16,
      async (index) => {
        const repository = `bench/repos/r${String(index % repositories).padStart(6, '0')}`;
        await pushBlob(server.url, repository, randomBytes(64));
      },
    );
  }
}

export { berthOf, distributionOf, randomFile, sideBySide, judge, join };
