import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { basic, writeUsers } from '../helpers/auth.ts';
import { eventually } from '../helpers/eventually.ts';
import { randomImage, pushImage, pushManifest, manifestOf } from '../helpers/images.ts';
import type { BerthProcess } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';
import { WebhookReceiver } from '../events/receiver.ts';
import { chunkedUploads, fresh, workersServing, startTwoWorkers } from './fresh-connections.ts';
import { writeOciArchive } from '../sources/archive/fixtures.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';

function metric(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('berth serve with two workers', () => {
  let dir: { path: string; remove(): Promise<void> };
  let berth: BerthProcess & { url: string };
  const hook = new WebhookReceiver();

  before(async () => {
    dir = await tempDir('berth-workers');
    await hook.start();
    await writeUsers(join(dir.path, 'htpasswd'), { alice: 'wonderland' });
    await mkdir(join(dir.path, 'archives'));
    const config = {
      auth: { htpasswd: join(dir.path, 'htpasswd'), anonymousPull: true, failedSignIns: { limit: 3, per: '10m' } },
      events: { webhooks: [{ name: 'audit', url: hook.url, types: ['push'] }] },
      repositories: [{ prefix: 'arch/', kind: 'archive', directory: join(dir.path, 'archives'), rescanInterval: '0s' }],
    };
    berth = await startTwoWorkers(dir.path, config);
  });
  after(async () => {
    await berth?.stop();
    await hook.stop();
    await dir?.remove();
  });

  it('serves one port from both workers, and /metrics adds them up', async () => {
    const signedIn = { authorization: basic('alice', 'wonderland') };
    for (let i = 0; i < 40; i += 1) assert.equal((await fresh(berth.url, 'GET', '/v2/?probe', { headers: signedIn })).status, 200);
    assert.deepEqual([...workersServing(berth, '/v2/?probe')].sort(), [0, 1], 'the kernel spreads connections over both workers');
    // Whichever worker answers /metrics, it counts what both served.
    for (let i = 0; i < 4; i += 1) {
      const text = (await fresh(berth.url, 'GET', '/metrics')).body.toString();
      assert.equal(metric(text, 'berth_http_requests_total', 'endpoint="base",method="GET",status="200"'), 40);
      assert.equal(text.match(/^process_resident_memory_bytes /gm)?.length, 1, 'process-wide metrics appear once');
    }
  });

  it('continues an upload on whichever worker gets the next request', async () => {
    assert.ok((await chunkedUploads(berth, 'team/uploads', { authorization: basic('alice', 'wonderland') }, 12)) > 0, 'some uploads moved between workers mid-way');
  });

  it('a tag moved through one worker is read back moved through every worker', async () => {
    const auth = basic('alice', 'wonderland');
    const image = randomImage({ layers: 1, layerSize: 512 });
    await pushImage(berth.url, 'team/moving', '1', image, auth);
    for (let round = 0; round < 6; round += 1) {
      const manifest = manifestOf({ ...(JSON.parse(image.manifest.bytes.toString()) as object), annotations: { round: String(round) } }, mediaTypes.ociManifest);
      assert.equal((await pushManifest(berth.url, 'team/moving', 'latest', manifest, auth)).status, 201);
      for (let read = 0; read < 4; read += 1) {
        const answer = await fresh(berth.url, 'GET', '/v2/team/moving/manifests/latest', { headers: { accept: mediaTypes.ociManifest } });
        assert.equal(answer.headers['docker-content-digest'], manifest.digest);
      }
    }
    assert.deepEqual([...workersServing(berth, '/v2/team/moving/manifests/latest')].sort(), [0, 1]);
  });

  it('counts failed sign-ins on every worker together', async () => {
    const wrong = { authorization: basic('mallory', 'guess') };
    const statuses: number[] = [];
    // Each request on a new connection: the kernel picks the worker. 24 of them reach both (one in 2^23 would not).
    for (let i = 0; i < 24; i += 1) statuses.push((await fresh(berth.url, 'GET', '/v2/?signin', { headers: wrong })).status);
    // As with the rate limit, a worker may not have heard of the other's last failure yet: one more 401 at most.
    const refused = statuses.filter((status) => status === 401).length;
    assert.ok(refused >= 3 && refused <= 4, `the limit of 3 holds across workers, give or take one: ${statuses.join(' ')}`);
    assert.deepEqual(statuses.slice(refused), Array(24 - refused).fill(429));
    assert.deepEqual([...workersServing(berth, '/v2/?signin')].sort(), [0, 1]);
  });

  it('delivers each event once, from one dispatcher, whichever worker took the push', async () => {
    const auth = basic('alice', 'wonderland');
    const before = hook.events().length;
    for (let i = 0; i < 6; i += 1) await pushImage(berth.url, `team/events${i}`, 'v1', randomImage({ layers: 1, layerSize: 256 }), auth);
    await eventually(() => hook.events().length >= before + 6, { timeout: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const pushed = hook.events().slice(before);
    assert.equal(pushed.length, 6);
    assert.equal(new Set(pushed.map((event) => event['id'])).size, 6, 'no event delivered twice');
  });

  it('one worker scans the archive directory; the other serves what it found', async () => {
    await writeOciArchive(join(dir.path, 'archives', 'team', 'app.oci'), [{ image: randomImage({ layers: 1, layerSize: 256 }), tags: ['v1'] }]);
    // 16 catalog reads on connections of their own reach both workers (one in 2^15 would not).
    for (let i = 0; i < 16; i += 1) {
      await eventually(async () => (await fresh(berth.url, 'GET', '/v2/_catalog')).body.toString().includes('arch/team/app'), { timeout: 10_000 });
    }
    const scanners = berth.lines.filter((line) => line.includes('archive directory scanned')).map((line) => (JSON.parse(line) as { worker: number }).worker);
    assert.ok(scanners.length > 0);
    assert.deepEqual(new Set(scanners), new Set([0]), 'only the leader scans');
    assert.deepEqual([...workersServing(berth, '/v2/_catalog')].sort(), [0, 1]);
  });

  it('on SIGTERM every worker finishes its requests in flight, then the process exits 0', async () => {
    const auth = { authorization: basic('alice', 'wonderland') };
    const uploads = await Promise.all(
      Array.from({ length: 12 }, async () => (await fresh(berth.url, 'POST', '/v2/team/drain/blobs/uploads/', { headers: auth })).headers['location'] as string),
    );
    const body = randomBytes(64 * 1024);
    const { port } = new URL(berth.url);
    // Each PATCH sends half its body, waits for SIGTERM, then the rest.
    const inFlight = uploads.map(
      (location) =>
        new Promise<number>((resolve, reject) => {
          const sent = request(
            {
              host: '127.0.0.1',
              port,
              path: location,
              method: 'PATCH',
              agent: false,
              headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': String(body.length) },
            },
            (response) => {
              response.resume();
              response.on('end', () => resolve(response.statusCode ?? 0));
            },
          );
          sent.on('error', reject);
          sent.write(body.subarray(0, body.length / 2));
          setTimeout(() => sent.end(body.subarray(body.length / 2)), 1500);
        }),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    berth.child.kill('SIGTERM');
    assert.deepEqual(await Promise.all(inFlight), Array(12).fill(202));
    assert.equal(await berth.exited, 0);
    const served = new Set(uploads.flatMap((location) => [...workersServing(berth, location.split('?')[0] as string)]));
    assert.deepEqual([...served].sort(), [0, 1], 'both workers had uploads in flight');
  });
});
