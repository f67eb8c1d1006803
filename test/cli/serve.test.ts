import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'node:http';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { alive, berthMain, spawnBerth, startBerthServer } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';

/** The pid of the process whose command line holds all of `parts`. */
async function processWith(parts: string[]): Promise<string | undefined> {
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const command = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (parts.every((part) => command.split('\0').includes(part))) return pid;
  }
  return undefined;
}

let dir: { path: string; remove(): Promise<void> };
before(async () => {
  dir = await tempDir('berth-cli');
});
after(() => dir.remove());

describe('berth serve', () => {
  it('writes one JSON access-log line per request', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'log')]);
    try {
      await call(berth.url, 'GET', '/v2/', { headers: { 'user-agent': 'log-test/1.0' } });
      await call(berth.url, 'GET', '/v2/nothing/tags/list', { headers: { 'user-agent': 'log-test/1.0' } });
      const line = await berth.waitFor(/"path":"\/v2\/nothing\/tags\/list"/);
      const entry = JSON.parse(line) as Record<string, unknown>;
      assert.equal(entry['method'], 'GET');
      assert.equal(entry['status'], 404);
      assert.equal(typeof entry['bytes'], 'number');
      assert.ok((entry['bytes'] as number) > 0);
      assert.equal(typeof entry['durationMs'], 'number');
      assert.equal(entry['client'], '127.0.0.1');
      assert.equal(entry['userAgent'], 'log-test/1.0');
      assert.equal(berth.lines.filter((text) => text.includes('"path":"/v2/"')).length, 1);
    } finally {
      await berth.stop();
    }
  });

  it('gives back the young generation start-up grew on every worker, a moment after it listens', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'idle'), '--workers', '2']);
    try {
      const newSpace = async () => {
        const text = await (await fetch(`${berth.url}/metrics`)).text();
        return Number(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\d+)/m.exec(text)?.[1]);
      };
      // Start-up leaves each thread's young generation at its maximum (tens of MiB for the two, summed by /metrics);
      // one collection per thread shrinks each to its start size (1 MiB).
      await eventually(async () => (await newSpace()) <= 4 * 2 ** 20, { timeout: 10_000 });
    } finally {
      await berth.stop();
    }
  });

  it('on SIGTERM finishes the request in flight, then exits 0', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'term')]);
    try {
      const started = await call(berth.url, 'POST', '/v2/slow/blobs/uploads/');
      const location = started.headers.get('location') as string;
      const { port } = new URL(berth.url);
      const chunk = randomBytes(1000);
      // Expect: 100-continue tells us when the server has taken the request in.
      const outgoing = request({ host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'content-length': chunk.length * 2, expect: '100-continue' } });
      const status = new Promise<number>((resolve, reject) => {
        outgoing.on('response', (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        outgoing.on('error', reject);
      });
      await once(outgoing, 'continue');
      outgoing.write(chunk);
      berth.child.kill('SIGTERM');
      await berth.waitFor(/stopping: finishing in-flight requests/);
      // The rest arrives after the server began to stop.
      outgoing.end(chunk);
      assert.equal(await status, 202);
      assert.equal(await berth.exited, 0);
      assert.ok(berth.lines.some((line) => line.includes('"msg":"stopped"')));
    } finally {
      await berth.stop();
    }
  });

  it('exits 1 when the drain runs out of server.shutdownTimeout', async () => {
    const berth = await startBerthServer(['--data', join(dir.path, 'drain')], { BERTH_SERVER_SHUTDOWN_TIMEOUT: '300ms' });
    try {
      const location = (await call(berth.url, 'POST', '/v2/stuck/blobs/uploads/')).headers.get('location') as string;
      const { port } = new URL(berth.url);
      // A chunk whose rest never comes: the request stays in flight.
      const outgoing = request({ host: '127.0.0.1', port, method: 'PATCH', path: location, headers: { 'content-length': 2000, expect: '100-continue' } });
      outgoing.on('error', () => undefined);
      // The server has the request (and is handling it) once it asks for the body.
      await once(outgoing, 'continue');
      outgoing.write(randomBytes(1000));
      berth.child.kill('SIGTERM');
      assert.equal(await berth.exited, 1);
      assert.ok(berth.lines.some((line) => line.includes('in-flight requests did not finish in time')));
      outgoing.destroy();
    } finally {
      await berth.stop();
    }
  });

  it('npm start stops Berth when npm gets SIGTERM, as from a process manager', { skip: missingCommands('npm') }, async () => {
    const data = join(dir.path, 'npm-start');
    const npm = spawn('npm', ['start', '--', '--listen', '127.0.0.1:0', '--data', data], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { PATH: process.env['PATH'], HOME: process.env['HOME'], BERTH_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    npm.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(npm, 'exit');
    let berthPid: string | undefined;
    try {
      await eventually(() => output.includes('Berth is listening'), { timeout: 30_000, interval: 100, what: 'npm start to start Berth' });
      berthPid = await processWith(['bin/berth.js', 'serve', data]);
      assert.ok(berthPid !== undefined, 'the Berth process is found');
      npm.kill('SIGTERM');
      await exited;
      await eventually(() => !alive(Number(berthPid)), { timeout: 10_000, interval: 100, what: `Berth (pid ${berthPid}) to stop after npm was stopped` });
      assert.match(output, /"msg":"stopped"/);
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
      berthPid ??= await processWith(['bin/berth.js', 'serve', data]);
      // An orphaned Berth would hold the test's pipes open.
      if (berthPid !== undefined && alive(Number(berthPid))) process.kill(Number(berthPid), 'SIGKILL');
    }
  });

  it('copy --help shows the default number of jobs as a number', async () => {
    const help = await run(process.execPath, [berthMain, 'copy', '--help']);
    assert.match(help, /blobs transferred at once \(default: 4\)/);
    assert.doesNotMatch(help, /"4"/);
  });

  it('stops with exit code 3 and the key named when the configuration is wrong', async () => {
    const file = join(dir.path, 'bad.yaml');
    await writeFile(file, 'registry:\n  maxManifestBytez: 10\n');
    const berth = spawnBerth(['serve', '--config', file, '--data', join(dir.path, 'bad')]);
    assert.equal(await berth.exited, 3);
    assert.match(berth.stderr(), /registry\.maxManifestBytez: unknown key/);
    const badEnv = spawnBerth(['serve', '--data', join(dir.path, 'bad')], { BERTH_LISTEN: 'nowhere' });
    assert.equal(await badEnv.exited, 3);
    assert.match(badEnv.stderr(), /listen: expected HOST:PORT.*BERTH_LISTEN/);
  });

  it('explains itself with --help and refuses unknown commands with exit code 2', async () => {
    const help = spawnBerth(['--help']);
    assert.equal(await help.exited, 0);
    assert.ok(help.lines.some((line) => line.includes('serve')));
    const unknown = spawnBerth(['fly']);
    assert.equal(await unknown.exited, 2);
  });
});
