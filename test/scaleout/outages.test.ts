import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { stringify } from 'yaml';
import { digestOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushBlob, pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { startNginx } from '../helpers/nginx.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startBerthServer } from '../helpers/process.ts';
import { rgwMissing, startTestRgw, type TestRgw } from '../helpers/rgw.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';

const skip = postgresMissing() || rgwMissing() || missingCommands('nginx');

/**
 * Two replicas behind nginx on PostgreSQL and Ceph RGW, each reached
 * through a TCP proxy that can black-hole it. Dependencies go down and come
 * back; clients see 503 with a reason, never 500, and Berth recovers alone.
 */
describe('replicas when PostgreSQL or the object store fails', { skip }, () => {
  let work: { path: string; remove(): Promise<void> };
  let postgres: TestPostgres;
  let rgw: TestRgw;
  let pgProxy: TcpProxy;
  let s3Proxy: TcpProxy;
  const children: { stop(): Promise<void> }[] = [];
  const replicas: string[] = [];
  let balanced: string;
  const statuses: { what: string; status: number }[] = [];
  let pushed: TestImage;
  let round = 0;
  let stopping = false;

  before(async () => {
    work = await tempDir('berth-outages');
    [postgres, rgw] = await Promise.all([startTestPostgres(), startTestRgw()]);
    const database = await postgres.createDatabase();
    // The test cluster commits asynchronously for speed; a crash (-m immediate) would then lose
    // acknowledged commits, which a production server (synchronous_commit on) never does.
    const admin = new pg.Client(database);
    await admin.connect();
    await admin.query(`ALTER DATABASE ${database.database} SET synchronous_commit = on`);
    await admin.end();
    pgProxy = await startTcpProxy({ path: postgres.socketPath });
    s3Proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(rgw.endpoint).port) });
    const configFile = join(work.path, 'berth.yaml');
    await writeFile(
      configFile,
      stringify({
        dataDir: join(work.path, 'data'),
        log: { level: 'info', format: 'json' },
        health: { interval: '1s', timeout: '1s' },
        storage: {
          driver: 's3',
          s3: {
            bucket: rgw.bucket,
            prefix: 'outages',
            region: rgw.region,
            endpoint: `http://127.0.0.1:${s3Proxy.port}`,
            forcePathStyle: true,
            credentials: { accessKeyId: rgw.credentials.accessKeyId, secretAccessKey: rgw.credentials.secretAccessKey },
            requestTimeout: '3s',
          },
        },
        metadata: {
          driver: 'postgres',
          postgres: {
            host: '127.0.0.1',
            port: pgProxy.port,
            user: database.user,
            database: database.database,
            pool: { connectionTimeout: '2s' },
            statementTimeout: '2s',
          },
        },
      }),
    );
    for (let i = 0; i < 2; i++) {
      const child = await startBerthServer(['--config', configFile]);
      replicas.push(child.url);
      children.push(child);
      // A replica that dies fails the test that comes next, with what it said.
      void child.exited.then((code) => {
        if (!stopping) console.log(`# replica ${i} exited with ${code}:\n${child.stderr().slice(-3000)}\n${child.lines.slice(-5).join('\n')}`);
      });
    }
    const nginxDir = join(work.path, 'nginx');
    await mkdir(nginxDir);
    const nginx = await startNginx(
      nginxDir,
      replicas.map((url) => new URL(url).host),
    );
    children.push(nginx);
    balanced = nginx.url;
    pushed = randomImage({ layers: 2, layerSize: 10_000 });
    // As a client would: again after a 503 (a gateway slow past its timeout on a busy machine).
    for (let attempt = 1; ; attempt++) {
      try {
        await pushImage(balanced, 'team/kept', '1.0', pushed);
        break;
      } catch (error) {
        if (attempt === 5 || !String(error).includes(' 503 ')) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  });

  after(async () => {
    stopping = true;
    await Promise.all(children.map((child) => child.stop()));
    await pgProxy?.close();
    await s3Proxy?.close();
    await rgw?.close();
    await postgres?.close();
    await work?.remove();
    const count = (test: (status: number) => boolean) => statuses.filter((entry) => test(entry.status)).length;
    console.log(
      `# answers seen by clients: ${statuses.length}, of them ${count((status) => status === 503)} × 503 and ${count((status) => status >= 500 && status !== 503)} × other 5xx`,
    );
    assert.deepEqual(
      statuses.filter((entry) => entry.status >= 500 && entry.status !== 503),
      [],
      'no 5xx but 503',
    );
  });

  async function call(what: string, path: string, init: RequestInit = {}): Promise<Response> {
    const response = await fetch(`${balanced}${path}`, { redirect: 'manual', ...init });
    statuses.push({ what, status: response.status });
    return response;
  }

  /** Milliseconds until every replica's /readyz answers `status`. */
  async function readinessFlips(status: number, limitMs: number): Promise<number> {
    const started = Date.now();
    for (;;) {
      const answers = await Promise.all(replicas.map((url) => fetch(`${url}/readyz`).then((response) => response.status)));
      if (answers.every((answer) => answer === status)) return Date.now() - started;
      if (Date.now() - started > limitMs) assert.fail(`readiness still ${answers.join(', ')} after ${limitMs} ms, wanted ${status}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Asserts the answer is a 503 naming `dependency`, with Retry-After. */
  async function assertUnavailable(response: Response, dependency: 'metadata' | 'blobs'): Promise<void> {
    assert.equal(response.status, 503, await response.clone().text());
    assert.ok(Number(response.headers.get('retry-after')) > 0);
    if (response.headers.get('content-type')?.includes('json') === true) {
      const body = (await response.json()) as { errors: { code: string; message: string; detail: { unavailable: string } }[] };
      assert.equal(body.errors[0]?.code, 'TOOMANYREQUESTS');
      assert.equal(body.errors[0]?.detail.unavailable, dependency);
    }
  }

  /**
   * Milliseconds from `since` (the dependency back) until a whole image push
   * through the balancer succeeds; fails past `limitMs`. A refused attempt's
   * status counts with the others: a 500 while recovering fails the suite.
   */
  async function pushWorksWithin(since: number, limitMs: number): Promise<number> {
    const image = randomImage({ layers: 1, layerSize: 5000 });
    for (;;) {
      try {
        await pushImage(balanced, 'team/after', `r${++round}`, image);
        return Date.now() - since;
      } catch (error) {
        const status = /push failed: (\d{3})/.exec(String(error))?.[1];
        statuses.push({ what: `push while recovering: ${String(error).slice(0, 200)}`, status: status === undefined ? 599 : Number(status) });
        if (Date.now() - since > limitMs) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  async function assertKeptImageIntact(): Promise<void> {
    const manifest = await call('manifest', `/v2/team/kept/manifests/1.0`, { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), pushed.manifest.digest);
    for (const layer of pushed.layers) {
      const blob = await fetch(`${balanced}/v2/team/kept/blobs/${layer.digest}`);
      assert.equal(blob.status, 200);
      assert.equal(Buffer.from(await blob.arrayBuffer()).length, layer.bytes.length);
    }
  }

  for (const mode of ['fast', 'immediate'] as const) {
    it(`answers 503 while PostgreSQL is stopped (-m ${mode}) and recovers on its own`, async () => {
      await postgres.stop(mode);
      const down = await readinessFlips(503, 3000);
      await assertUnavailable(await call('manifest', '/v2/team/kept/manifests/1.0', { headers: { accept: mediaTypes.ociManifest } }), 'metadata');
      await assertUnavailable(await call('tags', '/v2/team/kept/tags/list'), 'metadata');
      await assertUnavailable(await call('upload', '/v2/team/new/blobs/uploads/', { method: 'POST' }), 'metadata');
      const ready = await fetch(`${replicas[0]}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(await ready.text(), /"metadata database":\{"status":"down"/);
      await postgres.start();
      const back = Date.now();
      const up = await readinessFlips(200, 3000);
      const works = await pushWorksWithin(back, 5000);
      console.log(`# PostgreSQL -m ${mode}: not ready after ${down} ms; ready ${up} ms after restart, pushes work ${works} ms after restart`);
      await assertKeptImageIntact();
    });
  }

  it('keeps the bytes of a chunked upload acknowledged before PostgreSQL stopped; the client retries the refused chunk', async () => {
    const [first, second] = [randomBytes(70_000), randomBytes(50_000)];
    const bytes = Buffer.concat([first, second]);
    const started = await call('upload', '/v2/team/chunked/blobs/uploads/', { method: 'POST' });
    assert.equal(started.status, 202);
    const location = started.headers.get('location') ?? '';
    const patch = (chunk: Buffer, offset: number) =>
      call('chunk', location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
    assert.equal((await patch(first, 0)).status, 202);
    await postgres.stop('fast');
    await assertUnavailable(await patch(second, first.length), 'metadata');
    await postgres.start();
    await readinessFlips(200, 3000);
    const status = await call('upload status', location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${first.length - 1}`);
    assert.equal((await patch(second, first.length)).status, 202);
    const finished = await call('upload finish', `${location}?digest=${digestOf(bytes)}`, { method: 'PUT' });
    assert.equal(finished.status, 201, await finished.text());
    const pulled = await fetch(`${balanced}/v2/team/chunked/blobs/${digestOf(bytes)}`);
    assert.equal(digestOf(Buffer.from(await pulled.arrayBuffer())), digestOf(bytes));
  });

  it('leaves each manifest push cut by a PostgreSQL crash either whole or absent', async () => {
    const images = Array.from({ length: 16 }, () => randomImage({ layers: 1, layerSize: 2000 }));
    for (const image of images) {
      for (const blob of [image.config, ...image.layers]) await pushBlob(balanced, 'team/cut', blob);
    }
    const pushes = images.map(async (image, index) => {
      await new Promise((resolve) => setTimeout(resolve, index * 25));
      const response = await call('manifest put', `/v2/team/cut/manifests/t${index}`, {
        method: 'PUT',
        headers: { 'content-type': image.manifest.mediaType },
        body: image.manifest.bytes,
      });
      return response.status;
    });
    // Some pushes answered, some in flight, some not yet sent when the server dies.
    await new Promise((resolve) => setTimeout(resolve, 150));
    await postgres.stop('immediate');
    const answered = await Promise.all(pushes);
    assert.ok(
      answered.every((status) => status === 201 || status === 503),
      answered.join(', '),
    );
    await postgres.start();
    await readinessFlips(200, 3000);
    for (const [index, image] of images.entries()) {
      const response = await call('manifest', `/v2/team/cut/manifests/t${index}`, { headers: { accept: mediaTypes.ociManifest } });
      if (answered[index] === 201) assert.equal(response.status, 200, `acknowledged t${index} is there`);
      if (response.status === 200) assert.equal(response.headers.get('docker-content-digest'), image.manifest.digest);
      else assert.equal(response.status, 404);
      const byDigest = await call('manifest', `/v2/team/cut/manifests/${image.manifest.digest}`, { headers: { accept: mediaTypes.ociManifest } });
      assert.equal(byDigest.status, response.status, `t${index}: the tag and the manifest are both there or both absent`);
    }
    console.log(
      `# manifest pushes cut by -m immediate: ${answered.filter((status) => status === 201).length} acknowledged, ${answered.filter((status) => status === 503).length} refused`,
    );
  });

  it('keeps serving manifests and redirects while the object store is down, 503 for uploads', async () => {
    await rgw.stopGateway();
    const down = await readinessFlips(503, 3000);
    const manifest = await call('manifest', '/v2/team/kept/manifests/1.0', { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(manifest.status, 200);
    const layer = pushed.layers[0] as TestImage['layers'][number];
    const redirect = await call('blob', `/v2/team/kept/blobs/${layer.digest}`);
    assert.equal(redirect.status, 307);
    await assertUnavailable(await call('upload', '/v2/team/new/blobs/uploads/', { method: 'POST' }), 'blobs');
    await rgw.startGateway();
    const back = Date.now();
    const up = await readinessFlips(200, 3000);
    const works = await pushWorksWithin(back, 5000);
    console.log(`# object store stopped: not ready after ${down} ms; ready ${up} ms after restart, pushes work ${works} ms after restart`);
    await assertKeptImageIntact();
  });

  for (const [name, dependency] of [
    ['PostgreSQL', 'metadata'],
    ['the object store', 'blobs'],
  ] as const) {
    it(`answers 503 within the configured time when ${name} accepts connections but never answers`, async () => {
      const proxy = dependency === 'metadata' ? pgProxy : s3Proxy;
      proxy.setMode('blackhole');
      const down = await readinessFlips(503, 3000);
      const started = Date.now();
      const response =
        dependency === 'metadata'
          ? await call('manifest', '/v2/team/kept/manifests/1.0', { headers: { accept: mediaTypes.ociManifest } })
          : await call('upload', '/v2/team/new/blobs/uploads/', { method: 'POST' });
      const took = Date.now() - started;
      await assertUnavailable(response, dependency);
      // PostgreSQL: the connection timeout (2 s), or the statement timeout and the client's second beyond it;
      // S3: the request timeout (3 s).
      assert.ok(took < 7000, `503 after ${took} ms`);
      proxy.setMode('pass');
      const back = Date.now();
      const up = await readinessFlips(200, 3000);
      const works = await pushWorksWithin(back, 5000);
      console.log(`# ${name} black-holed: not ready after ${down} ms, 503 after ${took} ms; ready ${up} ms after it answers, pushes work ${works} ms after it answers`);
      await assertKeptImageIntact();
    });
  }
});
