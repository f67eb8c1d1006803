// The per-request path: Berth against a bare node:http server sending the
// same bytes with the same headers (bench/bare-registry.ts), one load
// generator thread, each case run on both servers back to back and repeated.
// Berth runs with every feature a deployment has on: access rules (anonymous
// pull, signed-in users), the access log, metrics and a webhook taking every
// event type. Part of `npm run bench`; alone:
//
//   node bench/hotpath.ts [--seconds 5] [--repeats 3] [--connections 64] [--only NAME] [--profile DIR]
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import bcrypt from 'bcryptjs';
import { benchImage, ociManifest, pushImage } from './load.ts';
import { abHead, median, wrk, type LoadResult } from './measure.ts';
import type { Row } from './report.ts';
import { startBareRegistry, startBerth, type BenchServer } from './servers.ts';

export interface HotPathOptions {
  work: string;
  seconds: number;
  repeats: number;
  connections: number;
  /** Only cases whose name contains this. */
  only?: string;
  /** Write a CPU profile of Berth (node --cpu-prof) into this directory. */
  profileDir?: string;
  /** More flags for Berth's Node (after those of bin/berth.js, so they win). */
  nodeFlags?: readonly string[];
  /** Features turned off, to see what each costs (`events`, `auth`, `log`, `metrics`); none in the report. */
  without?: readonly string[];
  log(message: string): void;
}

const user = 'bench';
const password = 'bench-password';
const basic = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

type Credentials = 'anonymous' | 'basic' | 'bearer';

interface Case {
  name: string;
  method: 'GET' | 'HEAD';
  path: string;
  credentials: Credentials;
  accept?: string;
}

/** One load run: what the load generator saw, and the server's CPU time per request (user + system, all threads; and the system part). */
interface Run extends LoadResult {
  cpuMicros: number;
  systemMicros: number;
}

interface Measured {
  berth: Run[];
  bare: Run[];
}

/** Starts everything, runs every case, stops everything; the rows for the report. */
export async function hotPathSection(options: HotPathOptions): Promise<Row[]> {
  const dir = join(options.work, 'hotpath');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const webhook = await startWebhookReceiver();
  const berth = await startBerth(
    join(dir, 'data'),
    ['--config', await writeConfig(dir, webhook.url, options.without ?? [])],
    [...(options.nodeFlags ?? []), ...(options.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${resolve(options.profileDir)}`])],
  );
  let bare: BenchServer | undefined;
  try {
    const image = benchImage();
    const signedIn = { authorization: basic };
    await pushImage(berth.url, 'bench/app', 'latest', image, signedIn);
    const repository = '/v2/bench/app';
    const cases: Case[] = [
      { name: 'manifest GET by tag', method: 'GET', path: `${repository}/manifests/latest`, credentials: 'anonymous', accept: ociManifest },
      { name: 'manifest GET by digest', method: 'GET', path: `${repository}/manifests/${image.digest}`, credentials: 'anonymous', accept: ociManifest },
      { name: 'manifest HEAD by tag', method: 'HEAD', path: `${repository}/manifests/latest`, credentials: 'anonymous', accept: ociManifest },
      { name: 'manifest HEAD by digest', method: 'HEAD', path: `${repository}/manifests/${image.digest}`, credentials: 'anonymous', accept: ociManifest },
      { name: 'blob HEAD', method: 'HEAD', path: `${repository}/blobs/${image.layerDigest}`, credentials: 'anonymous' },
      { name: 'tag list', method: 'GET', path: `${repository}/tags/list`, credentials: 'anonymous' },
      { name: 'manifest GET by tag, Basic (cached)', method: 'GET', path: `${repository}/manifests/latest`, credentials: 'basic', accept: ociManifest },
      { name: 'manifest GET by tag, Bearer token', method: 'GET', path: `${repository}/manifests/latest`, credentials: 'bearer', accept: ociManifest },
      { name: 'blob HEAD, Basic (cached)', method: 'HEAD', path: `${repository}/blobs/${image.layerDigest}`, credentials: 'basic' },
    ].filter((each) => options.only === undefined || each.name.includes(options.only)) as Case[];
    // The bare server answers what Berth answered, byte for byte.
    const responses: Record<string, { status: number; headers: Record<string, string>; body: string }> = {};
    for (const each of cases) {
      const response = await fetch(`${berth.url}${each.path}`, { method: each.method, headers: each.accept === undefined ? {} : { accept: each.accept } });
      if (response.status !== 200) throw new Error(`${each.name}: Berth answered ${response.status}`);
      const headers: Record<string, string> = {};
      for (const [name, value] of response.headers) if (!['date', 'connection', 'keep-alive', 'x-request-id'].includes(name)) headers[name] = value;
      responses[`${each.method} ${each.path}`] = { status: response.status, headers, body: Buffer.from(await response.arrayBuffer()).toString('base64') };
    }
    const responsesFile = join(dir, 'responses.json');
    await writeFile(responsesFile, JSON.stringify(responses));
    bare = await startBareRegistry(responsesFile);
    // Warm both up (JIT, the credential cache) before anything counts.
    await run(bare, cases[0] as Case, { ...options, seconds: 1 });
    for (const each of cases) await run(berth, each, { ...options, seconds: 2 });
    const measured = new Map<string, Measured>();
    for (const each of cases) {
      const results: Measured = { berth: [], bare: [] };
      for (let repeat = 0; repeat < options.repeats; repeat++) {
        results.bare.push(await run(bare, each, options));
        results.berth.push(await run(berth, each, options));
      }
      measured.set(each.name, results);
      const ratios = results.berth.map((result, index) => result.requestsPerSecond / (results.bare[index] as LoadResult).requestsPerSecond);
      options.log(`${each.name}: CPU per request (of it in the kernel) Berth ${cpuFigures(results.berth)} µs, bare ${cpuFigures(results.bare)} µs`);
      options.log(
        `${each.name}: Berth ${results.berth.map((result) => result.requestsPerSecond.toFixed(0)).join(' ')} req/s, bare ${results.bare
          .map((result) => result.requestsPerSecond.toFixed(0))
          .join(' ')} req/s, ratio ${ratios.map((ratio) => `${(ratio * 100).toFixed(0)} %`).join(' ')}; p99 Berth ${results.berth
          .map((result) => result.p99Ms.toFixed(2))
          .join(' ')} ms, bare ${results.bare.map((result) => result.p99Ms.toFixed(2)).join(' ')} ms`,
      );
    }
    options.log(`webhook received ${webhook.events()} events; Berth's peak RSS ${Math.round((await berth.peakRss()) / 2 ** 20)} MiB`);
    const ceiling = cases[0] === undefined ? [] : await workCeiling(bare, responsesFile, cases[0], options);
    return [...rowsOf(cases, measured, options.connections), ...ceiling];
  } finally {
    await bare?.stop();
    await berth.stop();
    await webhook.stop();
  }
}

/** Work of its own per request, in microseconds, that the bare server is given to show what any work costs. */
const ceilingWork = [10, 20] as const;

/**
 * The ceiling any server written for Node reaches against the bare one:
 * the bare server itself, spinning 10 or 20 µs per request before it
 * answers, paired with the plain bare server run by run. A slower server
 * also pays more in the kernel per request (its load generator sleeps
 * between answers, so more answers have to wake it), so the ratio falls
 * faster than the work alone would say.
 */
async function workCeiling(bare: BenchServer, responsesFile: string, each: Case, options: HotPathOptions): Promise<Row[]> {
  const rows: Row[] = [];
  for (const work of ceilingWork) {
    const working = await startBareRegistry(responsesFile, work);
    try {
      await run(working, each, { ...options, seconds: 1 });
      const results: Measured = { berth: [], bare: [] };
      for (let repeat = 0; repeat < options.repeats; repeat++) {
        results.bare.push(await run(bare, each, options));
        results.berth.push(await run(working, each, options));
      }
      const ratios = results.berth.map((result, index) => result.requestsPerSecond / (results.bare[index] as LoadResult).requestsPerSecond);
      options.log(
        `${each.name}, bare + ${work} µs of work: CPU per request (of it in the kernel) ${cpuFigures(results.berth)} µs, bare ${cpuFigures(results.bare)} µs; ratio ${ratios
          .map((ratio) => `${(ratio * 100).toFixed(0)} %`)
          .join(' ')}`,
      );
      rows.push({
        section: 'hot path',
        metric: `${each.name}: the bare server with ${work} µs of work of its own per request (${Math.round(Math.min(...ratios) * 100)}–${Math.round(Math.max(...ratios) * 100)} % over runs)`,
        unit: 'req/s',
        better: 'higher',
        berth: median(results.berth.map((result) => result.requestsPerSecond)),
        reference: median(results.bare.map((result) => result.requestsPerSecond)),
        referenceName: 'bare node:http',
      });
    } finally {
      await working.stop();
    }
  }
  return rows;
}

/** Each run's CPU time per request, and its kernel part: `41 (15) 44 (16)`. */
function cpuFigures(runs: readonly Run[]): string {
  return runs.map((run) => `${run.cpuMicros.toFixed(0)} (${run.systemMicros.toFixed(0)})`).join(' ');
}

/** Seconds of CPU a process has used in user space and in the kernel (every thread), from /proc. */
async function cpuSeconds(pid: number): Promise<{ user: number; system: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th, in clock ticks (100 per second).
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

/** One load run of `each` against `server`; Bearer tokens are fetched fresh for the run. */
async function run(server: BenchServer, each: Case, options: HotPathOptions): Promise<Run> {
  const headers: Record<string, string> = {};
  if (each.accept !== undefined) headers['accept'] = each.accept;
  if (each.credentials === 'basic') headers['authorization'] = basic;
  if (each.credentials === 'bearer') headers['authorization'] = `Bearer ${await bearerToken(server.name === 'berth' ? server.url : undefined)}`;
  const load = { connections: options.connections, seconds: options.seconds, headers, scriptDir: options.work };
  const url = `${server.url}${each.path}`;
  const before = await cpuSeconds(server.pid);
  const result = await (each.method === 'HEAD' ? abHead(url, load) : wrk(url, { ...load, threads: 1 }));
  const after = await cpuSeconds(server.pid);
  const perRequest = (seconds: number) => (seconds * 1e6) / result.requests;
  return { ...result, cpuMicros: perRequest(after.user + after.system - before.user - before.system), systemMicros: perRequest(after.system - before.system) };
}

let lastToken = '';

/** A pull token from Berth's token endpoint; the bare server is sent the last one (it ignores it, but parses the same header). */
async function bearerToken(berthUrl: string | undefined): Promise<string> {
  if (berthUrl === undefined) return lastToken || 'x'.repeat(500);
  const response = await fetch(`${berthUrl}/token?service=berth&scope=repository:bench/app:pull`, { headers: { authorization: basic } });
  if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}`);
  lastToken = ((await response.json()) as { token: string }).token;
  return lastToken;
}

function rowsOf(cases: Case[], measured: Map<string, Measured>, connections: number): Row[] {
  const rows: Row[] = [];
  const anonymous = new Map<string, number>();
  for (const each of cases) {
    const results = measured.get(each.name) as Measured;
    const berth = median(results.berth.map((result) => result.requestsPerSecond));
    const bare = median(results.bare.map((result) => result.requestsPerSecond));
    const ratios = results.berth.map((result, index) => result.requestsPerSecond / (results.bare[index] as LoadResult).requestsPerSecond);
    const range = `${Math.round(Math.min(...ratios) * 100)}–${Math.round(Math.max(...ratios) * 100)} % over runs`;
    const key = `${each.method} ${each.path}`;
    // Signed-in cases run minutes after their anonymous case: compared as shares of the bare server in their own runs.
    if (each.credentials === 'anonymous') anonymous.set(key, median(ratios));
    const judged = each.name.startsWith('manifest') || each.name.startsWith('blob HEAD');
    rows.push({
      section: 'hot path',
      metric: `${each.name}, ${connections} conn: throughput (${range})`,
      unit: 'req/s',
      better: 'higher',
      berth,
      reference: bare,
      referenceName: 'bare node:http',
      ...(judged ? { target: '≥ 50 % of bare node:http', met: median(ratios) >= 0.5 } : {}),
    });
    const p99 = median(results.berth.map((result) => result.p99Ms));
    const bareP99 = median(results.bare.map((result) => result.p99Ms));
    rows.push({
      section: 'hot path',
      metric: `${each.name}, ${connections} conn: p99`,
      unit: 'ms',
      better: 'lower',
      berth: p99,
      reference: bareP99,
      referenceName: 'bare node:http',
      ...(judged ? { target: '≤ 3× bare node:http', met: p99 <= 3 * bareP99 } : {}),
    });
    rows.push({
      section: 'hot path',
      metric: `${each.name}: CPU per request (user + system)`,
      unit: 'µs',
      better: 'lower',
      berth: median(results.berth.map((result) => result.cpuMicros)),
      reference: median(results.bare.map((result) => result.cpuMicros)),
      referenceName: 'bare node:http',
    });
    rows.push({
      section: 'hot path',
      metric: `${each.name}: of it in the kernel`,
      unit: 'µs',
      better: 'lower',
      berth: median(results.berth.map((result) => result.systemMicros)),
      reference: median(results.bare.map((result) => result.systemMicros)),
      referenceName: 'bare node:http',
    });
    const alone = anonymous.get(key);
    if (each.credentials !== 'anonymous' && alone !== undefined) {
      rows.push({
        section: 'hot path',
        metric: `${each.name}: share of the bare server against anonymous's`,
        unit: '% of bare',
        better: 'higher',
        berth: Math.round(median(ratios) * 100),
        reference: Math.round(alone * 100),
        referenceName: 'anonymous',
        target: '≥ 80 % of anonymous',
        met: median(ratios) >= 0.8 * alone,
      });
    }
  }
  return rows;
}

/** Access rules (anonymous pull, users push), one user, a webhook taking every event type, metrics on (the default). */
async function writeConfig(dir: string, webhookUrl: string, without: readonly string[]): Promise<string> {
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `${user}:${bcrypt.hashSync(password, 10)}\n`);
  const rules = join(dir, 'rules.yaml');
  await writeFile(rules, ['rules:', "  - repositories: 'bench/**'", '    anonymous: [pull]', "    grants: { '*': [pull, push, delete] }", ''].join('\n'));
  const config = join(dir, 'berth.yaml');
  await writeFile(
    config,
    [
      `log: { format: json${without.includes('log') ? ', level: warn' : ''} }`,
      without.includes('auth') ? 'auth: { enabled: false }' : `auth: { htpasswd: ${JSON.stringify(htpasswd)}, rulesFile: ${JSON.stringify(rules)} }`,
      without.includes('events') ? '' : `events: { webhooks: [{ name: bench, url: ${JSON.stringify(webhookUrl)}, batchSize: 1000 }] }`,
      without.includes('metrics') ? 'metrics: { enabled: false }' : '',
      '',
    ].join('\n'),
  );
  return config;
}

/** A webhook that takes every delivery (204), counting the events. */
async function startWebhookReceiver(): Promise<{ url: string; events(): number; stop(): Promise<void> }> {
  let events = 0;
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      events += body.startsWith('[') ? (JSON.parse(body) as unknown[]).length : 1;
      response.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/`,
    events: () => events,
    stop: async () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      repeats: { type: 'string', default: '3' },
      connections: { type: 'string', default: '64' },
      only: { type: 'string' },
      profile: { type: 'string' },
      without: { type: 'string', multiple: true, default: [] },
      'node-flag': { type: 'string', multiple: true, default: [] },
      out: { type: 'string', default: '.bench' },
    },
  });
  const work = join(resolve(values.out), 'work-hotpath');
  await mkdir(work, { recursive: true });
  const { markdown, machine } = await import('./report.ts');
  const rows = await hotPathSection({
    work,
    seconds: Number(values.seconds),
    repeats: Number(values.repeats),
    connections: Number(values.connections),
    ...(values.only === undefined ? {} : { only: values.only }),
    ...(values.profile === undefined ? {} : { profileDir: values.profile }),
    without: values.without,
    nodeFlags: values['node-flag'],
    log: (message) => process.stderr.write(`[hotpath] ${message}\n`),
  });
  process.stdout.write(markdown(rows, machine({ date: new Date().toISOString() })));
  await rm(work, { recursive: true, force: true });
}
