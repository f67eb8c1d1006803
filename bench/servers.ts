import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const berthMain = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const berthBin = fileURLToPath(new URL('../bin/berth.js', import.meta.url));
const bareRegistryMain = fileURLToPath(new URL('./bare-registry.ts', import.meta.url));
const plainReceiverMain = fileURLToPath(new URL('./plain-receiver.ts', import.meta.url));

/** A server process under measurement. */
export interface BenchServer {
  name: string;
  url: string;
  pid: number;
  /** Milliseconds from spawn to the first successful GET /v2/. */
  startupMs: number;
  /** Peak resident memory so far (VmHWM), in bytes. */
  peakRss(): Promise<number>;
  /** Starts a new peak from the current resident size (Linux: /proc/PID/clear_refs). */
  resetPeakRss(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  server.close();
  return port;
}

async function waitUntilServing(url: string, child: ChildProcess, started: number): Promise<number> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/v2/`);
      if (response.status === 200 || response.status === 401) return performance.now() - started;
    } catch {
      // not listening yet
    }
    await sleep(5);
  }
}

async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match === null ? 0 : Number(match[1]) * 1024;
}

function manage(name: string, child: ChildProcess, url: string, startupMs: number): BenchServer {
  return {
    name,
    url,
    pid: child.pid ?? 0,
    startupMs,
    peakRss: () => peakRssOf(child.pid ?? 0),
    resetPeakRss: () => writeFile(`/proc/${child.pid ?? 0}/clear_refs`, '5').catch(() => undefined),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([once(child, 'exit'), sleep(10_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

/**
 * Berth on the embedded default (filesystem + SQLite), access log at info like Distribution's;
 * `serveArgs` are added to `berth serve` (a `--config`), `nodeFlags` to Node's (a `--cpu-prof`).
 */
export async function startBerth(dataDir: string, serveArgs: string[] = [], nodeFlags: string[] = []): Promise<BenchServer> {
  const port = await freePort();
  const started = performance.now();
  // One worker unless asked for more: figures compare with earlier runs and with one Distribution process per core.
  const workers = serveArgs.includes('--workers') ? [] : ['--workers', '1'];
  const args = [...(await berthNodeFlags()), ...nodeFlags, berthMain, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, ...workers, ...serveArgs];
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env['PATH'], BERTH_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  return manage('berth', child, url, await waitUntilServing(url, child, started));
}

/** The Node flags `npm start` and the berth bin run with: those on bin/berth.js's `#!` line. */
async function berthNodeFlags(): Promise<string[]> {
  const shebang = (await readFile(berthBin, 'utf8')).split('\n', 1)[0] ?? '';
  return shebang.split(/\s+/).filter((word) => word.startsWith('--'));
}

/**
 * CNCF Distribution (Debian's docker-registry) on the filesystem driver, deletes on, access log on,
 * with the in-memory blob descriptor cache its packaged configuration turns on.
 */
export async function startDistribution(dataDir: string): Promise<BenchServer> {
  const port = await freePort();
  await mkdir(dataDir, { recursive: true });
  const config = join(dataDir, '..', `distribution-${port}.yml`);
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: info, formatter: json }',
      `storage: { filesystem: { rootdirectory: ${dataDir} }, cache: { blobdescriptor: inmemory }, delete: { enabled: true }, redirect: { disable: true } }`,
      `http: { addr: 127.0.0.1:${port} }`,
      '',
    ].join('\n'),
  );
  const started = performance.now();
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'ignore', 'ignore'] });
  const url = `http://127.0.0.1:${port}`;
  return manage('distribution', child, url, await waitUntilServing(url, child, started));
}

/** nginx serving files from `root` with sendfile: the machine's reference for blob GETs. */
export async function startNginx(root: string, workDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  await mkdir(workDir, { recursive: true });
  const config = join(workDir, 'nginx.conf');
  await writeFile(
    config,
    `worker_processes 2;
pid ${join(workDir, 'nginx.pid')};
error_log ${join(workDir, 'error.log')};
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path ${workDir};
  proxy_temp_path ${workDir};
  fastcgi_temp_path ${workDir};
  uwsgi_temp_path ${workDir};
  scgi_temp_path ${workDir};
  server { listen 127.0.0.1:${port}; root ${root}; }
}
`,
  );
  const child = spawn('nginx', ['-c', config, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
    if (
      await fetch(`${url}/`).then(
        () => true,
        () => false,
      )
    )
      break;
    if (attempt > 1000) throw new Error('nginx did not start');
    await sleep(10);
  }
  return {
    url,
    async stop() {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

/** The bare node:http server of bench/bare-registry.ts, answering the responses in `responsesFile`. */
export async function startBareRegistry(responsesFile: string, workMicros = 0): Promise<BenchServer> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, [bareRegistryMain, String(port), responsesFile, String(workMicros)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  return manage(workMicros === 0 ? 'bare node' : `bare node + ${workMicros} µs`, child, url, await waitUntilServing(url, child, started));
}

/** A plain Node HTTP server that only receives bodies (bench/plain-receiver.ts): the push ceiling for Node. */
export async function startPlainReceiver(workDir: string): Promise<BenchServer> {
  const port = await freePort();
  await mkdir(workDir, { recursive: true });
  const started = performance.now();
  const child = spawn(process.execPath, [plainReceiverMain, String(port), workDir], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  return manage('plain node', child, url, await waitUntilServing(url, child, started));
}
