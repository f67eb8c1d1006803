import { execFile } from 'node:child_process';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface LoadResult {
  requestsPerSecond: number;
  /** Requests completed in the run. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
}

export interface LoadOptions {
  connections: number;
  seconds: number;
  headers?: Record<string, string>;
  /** Several paths, taken in turn; otherwise the URL's own path. */
  paths?: string[];
  /** wrk threads (default: one per connection, at most 2). */
  threads?: number;
  scriptDir: string;
}

function toMs(value: string, unit: string): number {
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(value) * (scale[unit] ?? Number.NaN);
}

/** Runs wrk (C, so the load generator costs little CPU) and parses throughput and latency percentiles. */
export async function wrk(url: string, options: LoadOptions): Promise<LoadResult> {
  const lua: string[] = [];
  if (options.paths !== undefined) {
    lua.push(`local paths = { ${options.paths.map((path) => JSON.stringify(path)).join(', ')} }`);
    lua.push('local i = 0');
    lua.push('request = function() i = i % #paths + 1; return wrk.format(nil, paths[i]) end');
  }
  // A generous timeout: on a busy shared machine a slow response is a figure, not a failure.
  const args = ['--latency', '--timeout', '10s', '-t', String(options.threads ?? Math.min(options.connections, 2)), '-c', String(options.connections), '-d', `${options.seconds}s`];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  if (lua.length > 0) {
    const script = join(options.scriptDir, `wrk-${Math.random().toString(36).slice(2)}.lua`);
    await writeFile(script, `${lua.join('\n')}\n`);
    args.push('-s', script);
  }
  const { stdout } = await execFileAsync('wrk', [...args, url], { maxBuffer: 1024 * 1024 });
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  if (errors !== null) throw new Error(`wrk ${url}: ${errors[1]} failed responses\n${stdout}`);
  const socketErrors = /Socket errors: .*/.exec(stdout);
  if (socketErrors !== null && !/connect 0, read 0, write 0, timeout 0/.test(socketErrors[0])) {
    throw new Error(`wrk ${url}: ${socketErrors[0]}`);
  }
  const percentile = (label: string) => {
    const match = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(stdout);
    return match === null ? Number.NaN : toMs(match[1] as string, match[2] as string);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1]);
  return { requestsPerSecond: Number(rps?.[1]), requests, p50Ms: percentile('50'), p99Ms: percentile('99') };
}

/**
 * HEAD load with ApacheBench: wrk (and autocannon) wait for a body after a
 * HEAD response that carries Content-Length, so they cannot measure HEAD.
 * ab is single-threaded C; its CSV gives percentiles to the microsecond.
 */
export async function abHead(url: string, options: Omit<LoadOptions, 'paths' | 'threads'>): Promise<LoadResult> {
  const csv = join(options.scriptDir, `ab-${Math.random().toString(36).slice(2)}.csv`);
  const args = ['-i', '-k', '-q', '-c', String(options.connections), '-t', String(options.seconds), '-n', '100000000', '-e', csv];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  const { stdout } = await execFileAsync('ab', [...args, url], { maxBuffer: 1024 * 1024 });
  const failed = Number(/Failed requests:\s+(\d+)/.exec(stdout)?.[1] ?? 0) + Number(/Non-2xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  if (failed > 0) throw new Error(`ab ${url}: ${failed} failed responses`);
  const table = await readFile(csv, 'utf8');
  const percentile = (at: number) => Number(new RegExp(`^${at},([\\d.]+)$`, 'm').exec(table)?.[1] ?? Number.NaN);
  const requests = Number(/Complete requests:\s+(\d+)/.exec(stdout)?.[1]);
  return { requestsPerSecond: Number(/Requests per second:\s+([\d.]+)/.exec(stdout)?.[1]), requests, p50Ms: percentile(50), p99Ms: percentile(99) };
}

/** Downloads a URL with curl to /dev/null; bytes per second. */
export async function curlDownload(url: string): Promise<number> {
  const { stdout } = await execFileAsync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{speed_download}', url]);
  const [code, speed] = stdout.trim().split(' ');
  if (code !== '200') throw new Error(`GET ${url} answered ${code}`);
  return Number(speed);
}

/** `count` downloads at once; their combined bytes per second over the wall-clock time. */
export async function concurrentDownloads(url: string, count: number, bytesEach: number): Promise<number> {
  const started = performance.now();
  await Promise.all(Array.from({ length: count }, () => curlDownload(url)));
  return (count * bytesEach) / ((performance.now() - started) / 1000);
}

/** Uploads a file with curl (streamed, no Expect: 100-continue); returns the response's status and Location. */
export async function curlUpload(method: string, url: string, file: string): Promise<{ status: number; location: string }> {
  const { stdout } = await execFileAsync(
    'curl',
    ['-sS', '-o', '/dev/null', '-D', '-', '-X', method, '-H', 'Content-Type: application/octet-stream', '-H', 'Expect:', '-T', file, url],
    { maxBuffer: 1024 * 1024 },
  );
  const status = Number(/^HTTP\/[\d.]+ (\d+)/m.exec(stdout)?.[1]);
  const location = /^location: (.*)$/im.exec(stdout)?.[1]?.trim() ?? '';
  return { status, location };
}

/**
 * PUTs each file to its URL with one curl process, `parallel` transfers at a
 * time (a C client, so the client takes little of the machine); the HTTP
 * status of each transfer, in order.
 */
export async function curlParallelPuts(uploads: { url: string; file: string }[], parallel: number, configFile: string): Promise<number[]> {
  const quote = (value: string) => `"${value.replace(/["\\]/g, '\\$&')}"`;
  const lines = ['request = "PUT"', 'header = "Content-Type: application/octet-stream"', 'header = "Expect:"'];
  for (const { url, file } of uploads) lines.push(`url = ${quote(url)}`, `upload-file = ${quote(file)}`, 'output = "/dev/null"', 'write-out = "%{http_code}\\n"');
  await writeFile(configFile, `${lines.join('\n')}\n`);
  const { stdout } = await execFileAsync('curl', ['-sS', '--parallel', '--parallel-max', String(parallel), '-K', configFile], { maxBuffer: 1024 * 1024 });
  return stdout.trim().split('\n').map(Number);
}

/** Single-core SHA-256 throughput as OpenSSL measures it (bytes per second, 1 MiB blocks). */
export async function opensslSha256(seconds: number): Promise<number> {
  const { stdout } = await execFileAsync('openssl', ['speed', '-evp', 'sha256', '-seconds', String(seconds), '-bytes', '1048576']);
  const match = /^sha256\s+([\d.]+)k\s*$/m.exec(stdout);
  return match === null ? Number.NaN : Number(match[1]) * 1000;
}

/**
 * Copies `source` to a new file and fsyncs it with dd: how fast this
 * machine writes new data durably, the ceiling for any registry that does.
 */
export async function durableWrite(source: string, target: string): Promise<number> {
  const started = performance.now();
  await execFileAsync('dd', [`if=${source}`, `of=${target}`, 'bs=8M', 'conv=fsync', 'status=none']);
  const seconds = (performance.now() - started) / 1000;
  const { size } = await stat(target);
  await rm(target, { force: true });
  return size / seconds;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Runs `measure` `repeats` times and keeps the median of each field. */
export async function repeated<T extends Record<string, number>>(repeats: number, measure: () => Promise<T>): Promise<T> {
  const runs: T[] = [];
  for (let index = 0; index < repeats; index++) runs.push(await measure());
  const first = runs[0] as T;
  return Object.fromEntries(Object.keys(first).map((key) => [key, median(runs.map((run) => run[key] as number))])) as T;
}

/** Seconds of CPU a process has used (user + system, every thread), from /proc; 0 once it has gone. Steadier than a rate on a shared machine. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // After the command name (which may hold spaces), utime and stime are the 12th and 13th fields, in ticks of 1/100 s.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
}

/** Idle and total CPU time of the whole machine so far (jiffies, from /proc/stat). */
export async function machineCpu(): Promise<{ idle: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => 'cpu 0 0 0 0')).split('\n', 1)[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  return { idle: (values[3] ?? 0) + (values[4] ?? 0), total: values.reduce((total, value) => total + value, 0) };
}

/** The share of the machine's CPU time that was idle between two readings of `machineCpu`. */
export function idleShare(before: { idle: number; total: number }, after: { idle: number; total: number }): number {
  return (after.idle - before.idle) / Math.max(1, after.total - before.total);
}
