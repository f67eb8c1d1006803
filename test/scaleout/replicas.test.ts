import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { S3BlobStore } from '../../src/blobs/s3/s3-blob-store.ts';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { digestOf, hexOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { blobOf, pushBlob, pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { writeOciLayout } from '../helpers/oci-layout.ts';
import { postgresMissing, startTestPostgres, type PostgresDatabase, type TestPostgres } from '../helpers/postgres.ts';
import { startNginx } from '../helpers/nginx.ts';
import { startBerthServer } from '../helpers/process.ts';
import { objectStoreMissing, startTestObjectStore } from '../helpers/rgw.ts';
import { s3Options, type TestS3 } from '../helpers/s3.ts';
import { assertSameBytes } from '../helpers/stores.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';

const skip = postgresMissing() || objectStoreMissing() || missingCommands('nginx', 'skopeo');
const prefix = 'e2e';

/**
 * Two `berth serve` processes sharing PostgreSQL and S3 (Ceph RGW, or
 * s3rver with BERTH_TEST_S3=s3rver), behind nginx balancing round robin:
 * any replica answers anything.
 */
describe('replicas sharing S3 and PostgreSQL behind nginx', { skip }, () => {
  let work: { path: string; remove(): Promise<void> };
  let postgres: TestPostgres;
  let database: PostgresDatabase;
  let s3: TestS3;
  const children: { stop(): Promise<void> }[] = [];
  let replicaA: string;
  let replicaB: string;
  let balanced: string;
  let balancedHost: string;

  before(async () => {
    work = await tempDir('berth-replicas');
    postgres = await startTestPostgres();
    database = await postgres.createDatabase();
    s3 = await startTestObjectStore();
    const configFile = join(work.path, 'berth.yaml');
    await writeFile(
      configFile,
      stringify({
        dataDir: join(work.path, 'data'),
        log: { level: 'info', format: 'json' },
        storage: {
          driver: 's3',
          s3: { bucket: s3.bucket, prefix, region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { ...s3.credentials }, partSize: '5MiB' },
        },
        metadata: { driver: 'postgres', postgres: { host: database.host, port: database.port, user: database.user, database: database.database } },
      }),
    );
    // Both start at once: the schema migration must cope.
    const started = await Promise.allSettled([startBerthServer(['--config', configFile]), startBerthServer(['--config', configFile])]);
    for (const result of started) if (result.status === 'fulfilled') children.push(result.value);
    const [a, b] = started.map((result) => {
      if (result.status === 'rejected') throw result.reason;
      return result.value;
    });
    replicaA = (a as { url: string }).url;
    replicaB = (b as { url: string }).url;
    const nginxDir = join(work.path, 'nginx');
    await mkdir(nginxDir);
    const nginx = await startNginx(nginxDir, [new URL(replicaA).host, new URL(replicaB).host]);
    children.push(nginx);
    balanced = nginx.url;
    balancedHost = new URL(balanced).host;
  });

  after(async () => {
    await Promise.all(children.map((child) => child.stop()));
    await s3?.close();
    await postgres?.close();
    await work?.remove();
  });

  it('pushes and pulls with skopeo through the load balancer, following redirects to S3', async () => {
    const image = randomImage({ layers: 3, layerSize: 200_000 });
    const source = join(work.path, 'source');
    await writeOciLayout(source, image, '1.0');
    const reference = `docker://${balancedHost}/team/app:1.0`;
    await run('skopeo', ['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${source}:1.0`, reference]);
    // Pull twice, so that each replica answers some of the requests.
    for (const round of [1, 2]) {
      const target = join(work.path, `pulled-${round}`);
      await run('skopeo', ['copy', '--preserve-digests', '--src-tls-verify=false', reference, `oci:${target}:1.0`]);
      const index = JSON.parse(await readFile(join(target, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]?.digest, image.manifest.digest);
      for (const layer of image.layers) {
        assertSameBytes(await readFile(join(target, 'blobs', 'sha256', hexOf(layer.digest))), layer.bytes, `layer ${layer.digest}`);
      }
    }
    for (const url of [replicaA, replicaB]) {
      const head = await fetch(`${url}/v2/team/app/manifests/1.0`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } });
      assert.equal(head.headers.get('docker-content-digest'), image.manifest.digest);
    }
  });

  it('answers a blob GET with a 307 to a presigned S3 URL whose bytes match the digest', async () => {
    const image = randomImage({ layers: 1, layerSize: 64_000 });
    await pushImage(replicaA, 'team/redirect', 'v1', image);
    const layer = image.layers[0] as (typeof image.layers)[number];
    const response = await fetch(`${balanced}/v2/team/redirect/blobs/${layer.digest}`, { redirect: 'manual' });
    assert.equal(response.status, 307);
    const location = response.headers.get('location') ?? '';
    assert.ok(location.startsWith(`${s3.endpoint}/${s3.bucket}/${prefix}/blobs/sha256/`), location);
    const fromS3 = await fetch(location);
    assert.equal(fromS3.status, 200);
    assert.equal(digestOf(Buffer.from(await fromS3.arrayBuffer())), layer.digest);
    const head = await fetch(`${balanced}/v2/team/redirect/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.bytes.length));
  });

  it('finishes on replica B a chunked upload started on replica A', async () => {
    const [first, second, last] = [randomBytes(3000), randomBytes(6 * 1024 * 1024 + 11), randomBytes(5)];
    const bytes = Buffer.concat([first, second, last]);
    const digest = digestOf(bytes);
    const started = await fetch(`${replicaA}/v2/team/chunked/blobs/uploads/`, { method: 'POST' });
    assert.equal(started.status, 202);
    const location = started.headers.get('location') ?? '';
    let offset = 0;
    for (const [url, chunk] of [
      [replicaA, first],
      [replicaB, second],
    ] as const) {
      const patched = await fetch(`${url}${location}`, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      assert.equal(patched.status, 202, await patched.text());
      offset += chunk.length;
      assert.equal(patched.headers.get('range'), `0-${offset - 1}`);
    }
    const status = await fetch(`${replicaA}${location}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), `0-${offset - 1}`);
    const finished = await fetch(`${replicaB}${location}?digest=${digest}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: last,
    });
    assert.equal(finished.status, 201, await finished.text());
    const pulled = await fetch(`${replicaA}/v2/team/chunked/blobs/${digest}`);
    assert.equal(pulled.status, 200, 'fetch follows the redirect to S3');
    assertSameBytes(Buffer.from(await pulled.arrayBuffer()), bytes);
  });

  it('keeps one copy of a blob pushed through both replicas at once', async () => {
    const blob = blobOf(randomBytes(300_000));
    await Promise.all([pushBlob(replicaA, 'team/same', blob), pushBlob(replicaB, 'team/same', blob), pushBlob(replicaB, 'team/other', blob)]);
    const store = await S3BlobStore.open(s3Options(s3, prefix));
    try {
      const copies: string[] = [];
      for await (const item of store.list()) if (item.key === blob.digest) copies.push(item.key);
      assert.equal(copies.length, 1);
      for await (const upload of store.uploads.list()) assert.fail(`upload ${upload.key} was left behind`);
    } finally {
      await store.close();
    }
    const meta = await PostgresMetaStore.open(database);
    try {
      const rows = await meta.pool.query('SELECT count(*)::int AS n FROM blobs WHERE digest = $1', [blob.digest]);
      assert.equal(rows.rows[0]?.['n'], 1);
    } finally {
      await meta.close();
    }
    for (const url of [replicaA, replicaB]) {
      const head = await fetch(`${url}/v2/team/same/blobs/${blob.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
    }
  });

  it('settles a tag moved through both replicas at once on one manifest, seen alike everywhere', async () => {
    const images = [randomImage({ layers: 1 }), randomImage({ layers: 1 })];
    for (const image of images) await pushImage(replicaA, 'team/moving', `seed-${image.manifest.digest.slice(7, 15)}`, image);
    for (let round = 0; round < 10; round++) {
      await Promise.all([
        pushManifest(replicaA, 'team/moving', 'latest', (images[0] as (typeof images)[number]).manifest),
        pushManifest(replicaB, 'team/moving', 'latest', (images[1] as (typeof images)[number]).manifest),
      ]);
      const seen = await Promise.all(
        [replicaA, replicaB, balanced].map(async (url) => {
          const response = await fetch(`${url}/v2/team/moving/manifests/latest`, { method: 'HEAD', headers: { accept: mediaTypes.ociManifest } });
          return response.headers.get('docker-content-digest');
        }),
      );
      assert.equal(new Set(seen).size, 1, `round ${round}: ${seen.join(', ')}`);
      assert.ok(images.some((image) => image.manifest.digest === seen[0]));
    }
    const tags = (await (await fetch(`${balanced}/v2/team/moving/tags/list`)).json()) as { tags: string[] };
    assert.equal(tags.tags.filter((tag) => tag === 'latest').length, 1);
  });
});
