import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { convertDroplet } from '../../src/sources/droplet/droplet-layer.ts';
import type { RepositorySource } from '../../src/registry/repository.ts';
import type { DropletSource } from '../../src/sources/droplet/droplet-source.ts';
import { dockerUnavailable, startDockerEngine } from '../helpers/dockerd.ts';
import { postgresMetadataSettings, postgresMissing, startTestPostgres, type PostgresDatabase, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry, kindSourceFor } from '../helpers/registry.ts';
import { objectStoreMissing, startTestObjectStore } from '../helpers/rgw.ts';
import { s3StorageSettings, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, missingPackages, needsRoot, run } from '../helpers/tools.ts';
import { CloudFoundryStub } from '../sources/droplet/cloud-foundry-stub.ts';
import { buildDroplet, vcap, writeRootfs } from '../sources/droplet/fixtures.ts';

function skipReason(): string | false {
  const missing = postgresMissing() || objectStoreMissing() || missingCommands('skopeo', 'umoci', 'chroot', 'busybox', 'bash-static');
  if (missing !== false) return missing;
  const rootfsTools = [
    { what: '/usr/bin/busybox', debianPackage: 'busybox-static' },
    { what: '/bin/bash-static', debianPackage: 'bash-static' },
  ].filter((tool) => !existsSync(tool.what));
  if (rootfsTools.length > 0) return missingPackages(rootfsTools);
  return needsRoot('chroot and an owner-keeping umoci unpack');
}

interface ManifestJson {
  config: { digest: string };
  layers: { digest: string }[];
}

const pull = async (replica: TestRegistry, name: string, reference: string) => {
  const response = await fetch(`${replica.url}/v2/${name}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
  const text = await response.text();
  return { response, text, digest: response.headers.get('docker-content-digest'), json: JSON.parse(text) as ManifestJson };
};
const upload = (replica: TestRegistry, name: string, guid: string, body: Buffer) => fetch(`${replica.url}/v2/${name}/blobs/?guid=${guid}`, { method: 'POST', body });
const droplets = (replica: TestRegistry, prefix = 'cf/') => kindSourceFor<DropletSource>(replica.server.registry, `${prefix}x`);

const guids = {
  org: '2e1c5d7e-0000-4000-8000-000000000001',
  space: '2e1c5d7e-0000-4000-8000-000000000002',
  app: '2e8a2b3c-1111-4000-8000-000000000003',
  droplet: '2e000000-2222-4000-8000-000000000004',
};

/**
 * Two Berth replicas sharing one PostgreSQL database and one S3 bucket
 * (Ceph RGW; s3rver with BERTH_TEST_S3=s3rver), each with a data directory
 * of its own: droplet records, droplets cached from the Cloud Controller,
 * rootfs history and compositions are in the database, so either replica
 * serves what the other recorded.
 */
describe('droplet repositories on two replicas sharing PostgreSQL and S3', { skip: skipReason() }, () => {
  let postgres: TestPostgres;
  let database: PostgresDatabase;
  let s3: TestS3;
  let stub: CloudFoundryStub;
  let work: { path: string; remove(): Promise<void> };
  let a: TestRegistry;
  let b: TestRegistry;

  before(async () => {
    work = await tempDir('berth-droplet-replicas');
    stub = new CloudFoundryStub();
    [postgres, s3] = await Promise.all([startTestPostgres(), startTestObjectStore(), stub.start()]);
    stub.orgs = [{ guid: guids.org, name: 'acme' }];
    stub.spaces = [{ guid: guids.space, name: 'dev', parent: guids.org }];
    stub.apps = [{ guid: guids.app, name: 'shop', spaceGuid: guids.space, currentDroplet: guids.droplet }];
    stub.droplets = [
      { guid: guids.droplet, appGuid: guids.app, state: 'STAGED', createdAt: '2024-06-01T10:00:00Z', bits: await buildDroplet({ greeting: 'cc' }), webProcessType: 'bin/web' },
    ];
    database = await postgres.createDatabase();
    const cloudController = { url: stub.ccUrl, clientId: stub.clientId, clientSecret: stub.clientSecret, timeout: '5s', lookupCacheTtl: 0 };
    const settings = {
      ...s3StorageSettings(s3, 'droplets', { region: s3.region }),
      ...postgresMetadataSettings(database),
      // Collection only when a test asks for it, and of anything unreferenced at once.
      'gc.interval': 0,
      'gc.gracePeriod': 0,
      repositories: [
        { prefix: 'cf/', kind: 'droplet' },
        { prefix: 'cc/', kind: 'droplet', cloudController },
      ],
    };
    [a, b] = await Promise.all([startTestRegistry(settings), startTestRegistry(settings)]);
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await stub?.close();
    await s3?.close();
    await postgres?.close();
    await work?.remove();
  });

  test('a droplet uploaded through A is pulled and run through B', async () => {
    const v1 = join(work.path, 'v1.tar.gz');
    await writeRootfs(v1, 'v1', true, true);
    await droplets(a).rootfs.import(v1);
    assert.equal((await upload(a, 'cf/dev/shop', 'g-1', await buildDroplet())).status, 201);

    // Neither replica composed it yet: both compose it at once and agree.
    const [throughB, throughA] = await Promise.all([pull(b, 'cf/dev/shop', 'g-1'), pull(a, 'cf/dev/shop', 'g-1')]);
    assert.equal(throughB.response.status, 200, throughB.text);
    assert.equal(throughA.response.status, 200, throughA.text);
    assert.equal(throughA.digest, throughB.digest, 'both replicas compose the same image');
    assert.deepEqual(await (await fetch(`${b.url}/v2/cf/dev/shop/tags/list`)).json(), { name: 'cf/dev/shop', tags: ['g-1', 'latest'] });
    for (const replica of [a, b]) {
      assert.equal(existsSync(join(replica.dataDir, 'droplets.db')), false, 'no droplet records of its own');
      assert.equal((droplets(replica) as RepositorySource).retainedBlobs, undefined, 'no blobs kept outside the metadata for GC');
    }

    const layout = join(work.path, 'layout');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${b.host}/cf/dev/shop:latest`, `oci:${layout}:shop`]);
    const bundle = join(work.path, 'bundle');
    await run('umoci', ['unpack', '--image', `${layout}:shop`, bundle]);
    const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    const blob = async (digest: string) => JSON.parse(await readFile(join(layout, 'blobs', ...digest.split(':')), 'utf8')) as Record<string, unknown>;
    const manifest = (await blob(index.manifests[0]?.digest ?? '')) as unknown as ManifestJson;
    const { config } = (await blob(manifest.config.digest)) as { config: { User: string; Env: string[]; Cmd: string[] } };
    const chroot = (await run('sh', ['-c', 'command -v chroot'])).trim();
    const output = await run(chroot, [`--userspec=${config.User}`, join(bundle, 'rootfs'), ...config.Cmd], {
      env: Object.fromEntries(config.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)])),
    });
    assert.match(output, /^greeting=hello$/m);
    assert.match(output, /uid=2000 gid=2000 pwd=\/home\/vcap\/app/);
  });

  test('Docker Engine pulls through B and runs the droplet uploaded through A', { skip: dockerUnavailable() }, async () => {
    const engine = await startDockerEngine();
    try {
      const output = await engine.docker(['run', '--rm', '--network', 'none', `${b.host}/cf/dev/shop:g-1`]);
      const lines = output.trim().split('\n');
      assert.ok(lines.includes('greeting=hello'), output);
      assert.ok(lines.includes('uid=2000 gid=2000 pwd=/home/vcap/app home=/home/vcap/app port=8080 tmpdir=/home/vcap/tmp'), output);
    } finally {
      await engine.stop();
    }
  });

  test('a rootfs imported through B is the base of the images A composes', async () => {
    const before = await pull(a, 'cf/dev/shop', 'g-1');
    const v2 = join(work.path, 'v2.tar.gz');
    await writeRootfs(v2, 'v2', true, true);
    const imported = await droplets(b).rootfs.import(v2);
    assert.equal(imported.latest, true);
    const throughA = await pull(a, 'cf/dev/shop', 'g-1');
    assert.equal(throughA.response.status, 200, throughA.text);
    assert.equal(throughA.json.layers[0]?.digest, imported.digest);
    assert.notEqual(throughA.digest, before.digest);
    assert.equal((await droplets(a).rootfs.history())[0]?.digest, imported.digest, "A's history shows B's import");
    const older = await pull(b, 'cf/dev/shop', before.digest as string);
    assert.equal(older.response.status, 200, 'the image on the replaced rootfs stays pullable by digest through the other replica');
  });

  test('berth rootfs import against the shared stores takes effect on both replicas', async () => {
    const config = join(work.path, 'berth.yaml');
    await writeFile(
      config,
      stringify({
        dataDir: join(work.path, 'cli-data'),
        storage: {
          driver: 's3',
          s3: { bucket: s3.bucket, prefix: 'droplets', region: s3.region, endpoint: s3.endpoint, forcePathStyle: true, credentials: { ...s3.credentials } },
        },
        metadata: { driver: 'postgres', postgres: { host: database.host, port: database.port, user: database.user, database: database.database } },
        repositories: [{ prefix: 'cf/', kind: 'droplet' }],
      }),
    );
    const v3 = join(work.path, 'v3.tar.gz');
    await writeRootfs(v3, 'v3', true, true);
    const cli = join(import.meta.dirname, '../../src/cli/main.ts');
    const digest = (await run(process.execPath, [cli, 'rootfs', 'import', v3, '--config', config], { env: { ...process.env, BERTH_LOG_LEVEL: 'silent' } })).trim();
    for (const replica of [a, b]) {
      const image = await pull(replica, 'cf/dev/shop', 'g-1');
      assert.equal(image.response.status, 200, image.text);
      assert.equal(image.json.layers[0]?.digest, digest);
    }
  });

  test('the same guid uploaded through both at once: same bytes both 201, other bytes one 201 and one 409', async () => {
    const same = await buildDroplet({ greeting: 'same' });
    const both = await Promise.all([upload(a, 'cf/dev/race', 'g-same', same), upload(b, 'cf/dev/race', 'g-same', same)]);
    assert.deepEqual(
      both.map((response) => response.status),
      [201, 201],
    );
    assert.equal(await both[0]?.text(), await both[1]?.text());

    const [first, second] = [await buildDroplet({ greeting: 'one' }), await buildDroplet({ greeting: 'two' })];
    const scratch = await FsBlobStore.open(join(work.path, 'scratch'));
    const layers = await Promise.all([first, second].map(async (bits) => (await convertDroplet(scratch, Readable.from([bits]), vcap)).layer.digest));
    const raced = await Promise.all([upload(a, 'cf/dev/race', 'g-other', first), upload(b, 'cf/dev/race', 'g-other', second)]);
    assert.deepEqual(raced.map((response) => response.status).sort(), [201, 409]);
    const winner = raced.findIndex((response) => response.status === 201);
    const loser = layers[1 - winner] as Digest;
    assert.equal(await raced[winner]?.text(), layers[winner]);
    const throughA = await pull(a, 'cf/dev/race', 'g-other');
    assert.equal((await pull(b, 'cf/dev/race', 'g-other')).digest, throughA.digest, 'both replicas agree on the winner');
    assert.equal(await a.server.registry.blobs.stat(loser), undefined, "the loser's converted layer is not left in the bucket");
  });

  let deletedLayer: string;
  test('a droplet deleted through B is gone on A', async () => {
    const uploaded = await upload(a, 'cf/dev/gone', 'g-1', await buildDroplet({ greeting: 'gone' }));
    assert.equal(uploaded.status, 201);
    deletedLayer = await uploaded.text();
    assert.equal((await pull(a, 'cf/dev/gone', 'g-1')).response.status, 200);
    assert.equal((await fetch(`${b.url}/v2/cf/dev/gone/manifests/g-1`, { method: 'DELETE' })).status, 202);
    assert.equal((await pull(a, 'cf/dev/gone', 'g-1')).response.status, 404);
    assert.equal((await fetch(`${a.url}/v2/cf/dev/gone/tags/list`)).status, 404, 'the app has no droplet left');
  });

  test('a Cloud Controller droplet downloaded through A is served by B without downloading it again', async () => {
    await droplets(b, 'cc/').rootfs.import(join(work.path, 'v2.tar.gz'));
    const throughA = await pull(a, 'cc/acme/dev/shop', guids.droplet);
    assert.equal(throughA.response.status, 200, throughA.text);
    assert.equal(stub.counts.downloads, 1);
    const throughB = await pull(b, 'cc/acme/dev/shop', 'latest');
    assert.equal(throughB.response.status, 200, throughB.text);
    assert.equal(throughB.json.layers[1]?.digest, throughA.json.layers[1]?.digest, 'the same converted droplet layer');
    assert.equal(stub.counts.downloads, 1, 'the droplet recorded by A is reused by B');
  });

  test('garbage collection through A keeps what both replicas recorded and reclaims the deleted droplet', async () => {
    const kept = [
      ['cf/dev/shop', 'g-1'],
      ['cf/dev/race', 'g-other'],
      ['cc/acme/dev/shop', 'latest'],
      ['cf/rootfs', 'latest'],
    ] as const;
    // By digest after the pass: a pull by tag would compose a collected image again and hide the loss.
    const digests = await Promise.all(kept.map(async ([name, tag]) => (await pull(b, name, tag)).digest as string));
    assert.ok((await a.server.registry.operations.collect()) !== undefined, 'A ran the pass');
    assert.equal(await b.server.registry.blobs.stat(deletedLayer as Digest), undefined, 'the deleted droplet layer is reclaimed from the bucket');
    for (const [index, [name]] of kept.entries()) {
      const image = await pull(b, name, digests[index] as string);
      assert.equal(image.response.status, 200, `${name}: ${image.text}`);
      for (const blob of [image.json.config, ...image.json.layers]) assert.equal((await fetch(`${b.url}/v2/${name}/blobs/${blob.digest}`)).status, 200, `${name} ${blob.digest}`);
    }
  });
});
