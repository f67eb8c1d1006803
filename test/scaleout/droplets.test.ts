import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { DropletSource } from '../../src/sources/droplet/droplet-source.ts';
import { postgresMetadataSettings, postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry, kindSourceFor } from '../helpers/registry.ts';
import { s3StorageSettings, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, needsRoot, run } from '../helpers/tools.ts';
import { buildDroplet, writeRootfs } from '../sources/droplet/fixtures.ts';

function skipReason(): string | false {
  const missing = postgresMissing() || missingCommands('skopeo', 'umoci', 'chroot', 'busybox', 'bash-static');
  if (missing !== false) return missing;
  if (!existsSync('/usr/bin/busybox') || !existsSync('/bin/bash-static')) return 'needs busybox-static and bash-static (installed by .ci/run)';
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
const droplets = (replica: TestRegistry) => kindSourceFor<DropletSource>(replica.server.registry, 'cf/x');

/**
 * Two Berth replicas sharing one PostgreSQL database and one S3 bucket:
 * droplet records, rootfs history and compositions are in the database,
 * so either replica serves what the other recorded.
 */
describe('droplet repositories on two replicas sharing PostgreSQL and S3', { skip: skipReason() }, () => {
  let postgres: TestPostgres;
  let s3: TestS3;
  let work: { path: string; remove(): Promise<void> };
  let a: TestRegistry;
  let b: TestRegistry;

  before(async () => {
    work = await tempDir('berth-droplet-replicas');
    postgres = await startTestPostgres();
    s3 = await startTestS3();
    const database = await postgres.createDatabase();
    const settings = { ...s3StorageSettings(s3, 'droplets'), ...postgresMetadataSettings(database), repositories: [{ prefix: 'cf/', kind: 'droplet' }] };
    [a, b] = await Promise.all([startTestRegistry(settings), startTestRegistry(settings)]);
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await s3?.close();
    await postgres?.close();
    await work?.remove();
  });

  test('a droplet uploaded through A is pulled and run through B', async () => {
    const v1 = join(work.path, 'v1.tar.gz');
    await writeRootfs(v1, 'v1', true, true);
    await droplets(a).rootfs.import(v1);
    assert.equal((await upload(a, 'cf/dev/shop', 'g-1', await buildDroplet())).status, 201);

    const throughB = await pull(b, 'cf/dev/shop', 'g-1');
    assert.equal(throughB.response.status, 200, throughB.text);
    assert.equal((await pull(a, 'cf/dev/shop', 'g-1')).digest, throughB.digest, 'both replicas compose the same image');

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

  test('a rootfs imported through B is the base of the images A composes', async () => {
    const v2 = join(work.path, 'v2.tar.gz');
    await writeRootfs(v2, 'v2', true, true);
    const imported = await droplets(b).rootfs.import(v2);
    assert.equal(imported.latest, true);
    const throughA = await pull(a, 'cf/dev/shop', 'g-1');
    assert.equal(throughA.response.status, 200, throughA.text);
    assert.equal(throughA.json.layers[0]?.digest, imported.digest);
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
    const raced = await Promise.all([upload(a, 'cf/dev/race', 'g-other', first), upload(b, 'cf/dev/race', 'g-other', second)]);
    assert.deepEqual(raced.map((response) => response.status).sort(), [201, 409]);
    const throughA = await pull(a, 'cf/dev/race', 'g-other');
    assert.equal((await pull(b, 'cf/dev/race', 'g-other')).digest, throughA.digest, 'both replicas agree on the winner');
  });
});
