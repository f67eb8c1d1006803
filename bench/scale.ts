// Lists at scale: one repository with `tags` tags and a catalog of
// `repositories` repositories, loaded straight into a fresh embedded store
// (SQL, before Berth starts: loading a million names through the API would
// take most of an hour), then read through Berth's HTTP API. Page times at
// several depths, a full walk, and manifest-GET latency on other connections
// while a client walks. See docs/benchmarks.md.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { SqliteMetaStore } from '../src/meta/sqlite/sqlite-meta-store.ts';
import { wrk } from './measure.ts';
import type { Row } from './report.ts';
import type { BenchContext } from './sections.ts';
import { startBerth } from './servers.ts';

export interface ScaleSizes {
  tags: number;
  /** Each holds one tagged manifest that references one linked blob. */
  repositories: number;
  /** Blob rows no repository links, for a garbage collection pass to delete. */
  garbage: number;
}

const berthMain = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const bigRepository = 'scale/big';
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 2 },
    layers: [],
  }),
);
const manifestDigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;

/** Zero-padded, so byte order is numeric order and a depth is easy to name. */
const padded = (index: number) => String(index).padStart(8, '0');

/** Writes the data set into `<dataDir>/berth.db` (Berth's own schema, created by the store itself). */
async function load(dataDir: string, sizes: ScaleSizes): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, 'berth.db');
  await SqliteMetaStore.open(path).close();
  const db = new DatabaseSync(path);
  const now = Date.now();
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; BEGIN');
  const repository = db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?)');
  const putManifest = db.prepare('INSERT INTO manifests (repository_id, digest, media_type, content, size, created_at) VALUES (?, ?, ?, ?, ?, ?)');
  const tag = db.prepare('INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)');
  const blob = db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, 64, 0)');
  const link = db.prepare('INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, 0)');
  const reference = db.prepare("INSERT INTO manifest_references (repository_id, manifest_digest, target, kind) VALUES (?, ?, ?, 'blob')");
  const add = (name: string) => {
    const id = Number(repository.run(name, now).lastInsertRowid);
    putManifest.run(id, manifestDigest, 'application/vnd.oci.image.manifest.v1+json', manifest, manifest.length, now);
    return id;
  };
  const blobDigest = (index: number) => `sha256:${index.toString(16).padStart(64, '0')}`;
  const big = add(bigRepository);
  for (let index = 0; index < sizes.tags; index++) tag.run(big, `t${padded(index)}`, manifestDigest, now);
  for (let index = 0; index < sizes.repositories; index++) {
    const id = add(`scale/r${padded(index)}`);
    tag.run(id, 'latest', manifestDigest, now);
    blob.run(blobDigest(index));
    link.run(id, blobDigest(index));
    reference.run(id, manifestDigest, blobDigest(index));
  }
  // Rows only: deleting a blob whose file is absent costs the collector a failed unlink, as a real one costs an unlink.
  for (let index = 0; index < sizes.garbage; index++) blob.run(blobDigest(sizes.repositories + index));
  db.exec('COMMIT');
  db.close();
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? 0;
}

/** p50/p99 in milliseconds of `count` sequential GETs of `url`. */
async function timed(url: string, count: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let index = 0; index < count; index++) {
    const started = performance.now();
    const response = await fetch(url);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${url}: ${response.status}`);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

/** Follows Link headers from `path` until the list ends; pages and seconds. */
async function walk(base: string, path: string, stop: () => boolean = () => false): Promise<{ pages: number; seconds: number }> {
  const started = performance.now();
  let next: string | undefined = path;
  let pages = 0;
  while (next !== undefined && !stop()) {
    const response: Response = await fetch(`${base}${next}`);
    await response.arrayBuffer();
    pages++;
    next = /<([^>]+)>/.exec(response.headers.get('link') ?? '')?.[1];
  }
  return { pages, seconds: (performance.now() - started) / 1000 };
}

/**
 * Runs `measure` while a `berth gc` process collects beside the server. The
 * load starts once the pass is past its start-up (it has logged its start);
 * a pass still running after `measure` is stopped (a pass cut short is safe:
 * tombstones, re-checks), so that a pass over millions of blobs need not be
 * waited for. `passMs` only when the pass finished on its own.
 */
async function whileCollecting<T>(dataDir: string, measure: () => Promise<T>): Promise<{ result: T; passMs?: number }> {
  const started = performance.now();
  const child = spawn(process.execPath, [berthMain, 'gc', '--json', '--verbose', '--data', dataDir], {
    env: { PATH: process.env['PATH'], BERTH_GC_GRACE_PERIOD: '1s', BERTH_GC_INTERVAL: '0', BERTH_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let finishedMs: number | undefined;
  const exited = once(child, 'exit').then(([code, signal]) => {
    if (code !== 0 && signal === null) throw new Error(`berth gc exited with ${String(code)}`);
    if (code === 0) finishedMs = performance.now() - started;
  });
  // The pass logs each batch at debug level: the first line means it is working.
  await new Promise<void>((resolve) => {
    child.stderr?.once('data', () => resolve());
    child.once('exit', () => resolve());
  });
  child.stderr?.resume();
  const result = await measure();
  if (child.exitCode === null) child.kill('SIGTERM');
  await exited;
  return finishedMs === undefined ? { result } : { result, passMs: finishedMs };
}

/** A page time row: p50 against the 2 ms target, p99 in the metric's name. */
function pageRow(what: string, page: { p50: number; p99: number }): Row {
  return { section: 'scale', metric: `${what} (p99 ${page.p99.toFixed(2)} ms)`, unit: 'ms', better: 'lower', berth: page.p50, target: 'p50 ≤ 2 ms', met: page.p50 <= 2 };
}

/** What the section needs of the bench's context (a BenchContext has it). */
type ScaleContext = Pick<BenchContext, 'work' | 'log'> & { sizes: Pick<BenchContext['sizes'], 'seconds'> };

/** Loads the data set into `dataDir` unless `reuse` and a database is there already. */
async function loadOnce(context: ScaleContext, dataDir: string, sizes: ScaleSizes, reuse: boolean): Promise<void> {
  if (reuse && existsSync(join(dataDir, 'berth.db'))) return;
  await rm(dataDir, { recursive: true, force: true });
  context.log(`scale: loading ${sizes.tags} tags, ${sizes.repositories} repositories and ${sizes.garbage} unlinked blobs`);
  const loadStarted = performance.now();
  await load(dataDir, sizes);
  context.log(`scale: loaded in ${((performance.now() - loadStarted) / 1000).toFixed(1)} s`);
}

export async function scaleSection(context: ScaleContext, sizes: ScaleSizes, options: { dataDir?: string; reuse?: boolean } = {}): Promise<Row[]> {
  const dataDir = options.dataDir ?? join(context.work, 'scale');
  await loadOnce(context, dataDir, sizes, options.reuse === true);
  const berth = await startBerth(dataDir);
  const rows: Row[] = [];
  try {
    const base = berth.url;
    const tagsUrl = (last?: string) => `${base}/v2/${bigRepository}/tags/list?n=100${last === undefined ? '' : `&last=${last}`}`;
    const catalogUrl = (last?: string) => `${base}/v2/_catalog?n=100${last === undefined ? '' : `&last=${last}`}`;
    for (const [label, depth] of [
      ['first', undefined],
      ['middle', Math.floor(sizes.tags / 2)],
      ['last', sizes.tags - 50],
    ] as const) {
      const page = await timed(tagsUrl(depth === undefined ? undefined : `t${padded(depth)}`), 200);
      rows.push(pageRow(`tags/list n=100, ${label} page of ${sizes.tags} tags`, page));
    }
    for (const [label, depth] of [
      ['first', undefined],
      ['middle', Math.floor(sizes.repositories / 2)],
    ] as const) {
      const page = await timed(catalogUrl(depth === undefined ? undefined : `scale/r${padded(depth)}`), 200);
      rows.push(pageRow(`_catalog n=100, ${label} page of ${sizes.repositories} repositories`, page));
    }
    const fullWalk = await walk(base, `/v2/${bigRepository}/tags/list?n=1000`);
    rows.push({ section: 'scale', metric: `full tag walk, n=1000 (${fullWalk.pages} pages)`, unit: 'ms', better: 'lower', berth: fullWalk.seconds * 1000 });

    const manifestPath = `/v2/${bigRepository}/manifests/t${padded(1)}`;
    const load = { connections: 16, seconds: context.sizes.seconds, scriptDir: context.work };
    const quiet = await wrk(`${base}${manifestPath}`, load);
    rows.push({ section: 'scale', metric: 'manifest GET p99, quiet', unit: 'ms', better: 'lower', berth: quiet.p99Ms });
    for (const [label, path] of [
      ['a client pages the big repository', `/v2/${bigRepository}/tags/list?n=100`],
      ['a catalog walk', '/v2/_catalog?n=100'],
    ] as const) {
      let done = false;
      const walking = (async () => {
        while (!done) await walk(base, path, () => done);
      })();
      const busy = await wrk(`${base}${manifestPath}`, load);
      done = true;
      await walking;
      rows.push({
        section: 'scale',
        metric: `manifest GET p99 while ${label}`,
        unit: 'ms',
        better: 'lower',
        berth: busy.p99Ms,
        reference: quiet.p99Ms,
        referenceName: 'quiet',
        target: '≤ 2× quiet',
        met: busy.p99Ms <= 2 * quiet.p99Ms,
      });
    }
    const during = await whileCollecting(dataDir, () => wrk(`${base}${manifestPath}`, load));
    rows.push({
      section: 'scale',
      metric: `manifest GET p99 while \`berth gc\` deletes ${sizes.garbage} of ${sizes.repositories + sizes.garbage} blobs${during.passMs === undefined ? ' (stopped after the measurement)' : ''}`,
      unit: 'ms',
      better: 'lower',
      berth: during.result.p99Ms,
      reference: quiet.p99Ms,
      referenceName: 'quiet',
      target: '≤ 2× quiet',
      met: during.result.p99Ms <= 2 * quiet.p99Ms,
    });
    if (during.passMs !== undefined) {
      rows.push({ section: 'scale', metric: `GC pass over ${sizes.repositories + sizes.garbage} blobs, requests running`, unit: 'ms', better: 'lower', berth: during.passMs });
    }
    rows.push({ section: 'scale', metric: 'peak RSS', unit: 'B', better: 'lower', berth: await berth.peakRss() });
  } finally {
    await berth.stop();
  }
  return rows;
}

// `node bench/scale.ts --size 1000000 [--seconds 5] [--load-only] [--reuse]`: one size of the
// curve (that many tags, repositories and unlinked blobs) in `<out>/scale-<size>`. With
// --load-only it loads and stops; with --reuse it measures a loaded directory again, so that
// a million rows are loaded in one locked run and measured in another.
if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '10000' },
      seconds: { type: 'string', default: '5' },
      'load-only': { type: 'boolean', default: false },
      reuse: { type: 'boolean', default: false },
      out: { type: 'string', default: '.bench' },
    },
  });
  const size = Number(values.size);
  const sizes = { tags: size, repositories: size, garbage: size };
  const work = resolve(values.out);
  const dataDir = join(work, `scale-${size}`);
  const context: ScaleContext = { work, sizes: { seconds: Number(values.seconds) }, log: (message) => process.stderr.write(`[scale] ${message}\n`) };
  if (values['load-only']) {
    await loadOnce(context, dataDir, sizes, values.reuse);
  } else {
    const { markdown, machine } = await import('./report.ts');
    const rows = await scaleSection(context, sizes, { dataDir, reuse: values.reuse });
    process.stdout.write(markdown(rows, machine({ date: new Date().toISOString(), size: String(size) })));
  }
}
