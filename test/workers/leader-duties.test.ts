import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import type { BerthProcess } from '../helpers/process.ts';
import { startTwoWorkers } from './fresh-connections.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeRootfs } from '../sources/droplet/fixtures.ts';

/** One GET on a connection of its own, so the kernel may hand it to any worker; its status. */
function freshGet(base: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sent = request(`${base}${path}`, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    sent.on('error', reject).end();
  });
}

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const logged = (berth: BerthProcess, message: string) =>
  berth.lines.filter((line) => line.includes(`"msg":"${message}"`)).map((line) => JSON.parse(line) as Record<string, unknown>);

describe('berth serve with two workers: what runs once', () => {
  let dir: { path: string; remove(): Promise<void> };
  let berth: BerthProcess & { url: string };
  let rootfs: string;

  before(async () => {
    dir = await tempDir('berth-leader');
    rootfs = join(dir.path, 'rootfs.tar');
    await writeRootfs(rootfs, 'v1', false);
    const config = {
      gc: { interval: '1s' },
      repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs, rootfsCheckInterval: '1s' }],
    };
    berth = await startTwoWorkers(dir.path, config);
  });
  after(async () => {
    await berth?.stop();
    await dir?.remove();
  });

  it('garbage collection is scheduled once, on the leader, and the rootfs is imported there once', async () => {
    await eventually(() => logged(berth, 'rootfs imported: new droplet images use it').length === 1, { what: 'the rootfs import' });
    await new Promise((resolve) => setTimeout(resolve, 3500));
    const imports = logged(berth, 'rootfs file is new or replaced: importing it');
    assert.deepEqual(
      imports.map((entry) => entry['worker']),
      [0],
      'only the leader imports, without waiting for a pull',
    );
    await writeRootfs(rootfs, 'v2', false);
    await eventually(() => logged(berth, 'rootfs imported: new droplet images use it').length === 2, { what: 'the replaced rootfs imported' });
    assert.deepEqual(
      logged(berth, 'rootfs file is new or replaced: importing it').map((entry) => entry['worker']),
      [0, 0],
    );
    // Passes run every second (each in a thread of its own, which takes a while on a busy machine).
    let metrics = '';
    await eventually(
      async () => {
        metrics = (await freshGet(berth.url, '/metrics')).body;
        return metric(metrics, 'berth_gc_runs_total', 'result="ok"') >= 3;
      },
      { what: 'three passes', timeout: 30_000, interval: 250 },
    );
    assert.equal(metric(metrics, 'berth_gc_runs_total', 'result="skipped"'), 0, 'no second scheduler found a pass running');
  });
});

describe('berth serve with two workers: the request rate limit', () => {
  let dir: { path: string; remove(): Promise<void> };
  let berth: BerthProcess & { url: string };

  before(async () => {
    dir = await tempDir('berth-rate-limit');
    berth = await startTwoWorkers(dir.path, { limits: { rateLimit: { requests: 12, per: '10m', burst: 12 } } });
  });
  after(async () => {
    await berth?.stop();
    await dir?.remove();
  });

  it('the rate limit counts requests on every worker', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i += 1) statuses.push((await freshGet(berth.url, '/v2/')).status);
    const allowed = statuses.filter((status) => status === 200).length;
    // Workers tell each other what they allowed once per turn (rate-limiter.ts): the worker that takes the
    // next connection may not have heard of the last request yet, so one more can get through on a busy machine.
    assert.ok(allowed >= 12 && allowed <= 13, `the limit of 12 holds across workers, give or take one: ${statuses.join(' ')}`);
    assert.ok(statuses.slice(allowed).every((status) => status === 429));
    const workers = new Set(logged(berth, 'request').map((entry) => entry['worker']));
    assert.deepEqual([...workers].sort(), [0, 1], 'both workers answered');
  });
});
