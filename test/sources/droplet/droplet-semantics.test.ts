import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import type { DropletSource } from '../../../src/sources/droplet/droplet-source.ts';
import { authSettings, basic } from '../../helpers/auth.ts';
import { startTestRegistry, type TestRegistry, kindSourceFor } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { buildDroplet, writeRootfs } from './fixtures.ts';

interface ManifestJson {
  config: { digest: string };
  layers: { digest: string }[];
}

interface ImageConfig {
  created: string;
  config: { Cmd?: string[]; Env: string[]; Labels: Record<string, string> };
}

let files: { path: string; remove(): Promise<void> };
let rootfsPath: string;
let registry: TestRegistry;

const upload = (url: string, name: string, guid: string, body: Buffer) => fetch(`${url}/v2/${name}/blobs/?guid=${guid}`, { method: 'POST', body });

async function pull(url: string, name: string, reference: string) {
  const response = await fetch(`${url}/v2/${name}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
  const text = await response.text();
  return { response, text, digest: response.headers.get('docker-content-digest'), json: JSON.parse(text) as ManifestJson & { errors?: { code: string; message: string }[] } };
}

async function configOf(url: string, name: string, manifest: ManifestJson): Promise<ImageConfig> {
  return (await (await fetch(`${url}/v2/${name}/blobs/${manifest.config.digest}`)).json()) as ImageConfig;
}

function droplets(): DropletSource {
  return kindSourceFor<DropletSource>(registry.server.registry, 'cf/x');
}

before(async () => {
  files = await tempDir('berth-droplet-semantics');
  rootfsPath = join(files.path, 'rootfs.tar');
  await writeRootfs(rootfsPath, 'v1', false);
  registry = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs: rootfsPath, rootfsCheckInterval: 0 }] });
});
after(async () => {
  await registry?.close();
  await files?.remove();
});

describe('uploaded droplets: what CF promises', () => {
  test('digests come from content only: the same droplet uploaded to another Berth, later, has the same digest', async () => {
    const droplet = await buildDroplet({ greeting: 'same' });
    assert.equal((await upload(registry.url, 'cf/dev/same', 'g-1', droplet)).status, 201);
    const here = await pull(registry.url, 'cf/dev/same', 'g-1');
    assert.equal(here.response.status, 200, here.text);
    assert.equal((await configOf(registry.url, 'cf/dev/same', here.json)).created, '1970-01-01T00:00:00.000Z');
    const elsewhere = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs: rootfsPath, rootfsCheckInterval: 0 }] });
    try {
      assert.equal((await upload(elsewhere.url, 'cf/dev/same', 'g-1', droplet)).status, 201);
      assert.equal((await pull(elsewhere.url, 'cf/dev/same', 'g-1')).digest, here.digest);
    } finally {
      await elsewhere.close();
    }
  });

  test("each uploaded droplet starts with its own staging_info.yml command; a newer droplet changes neither the older guid's Cmd nor its digest", async () => {
    assert.equal((await upload(registry.url, 'cf/dev/commands', 'g-1', await buildDroplet({ startCommand: './one.sh' }))).status, 201);
    const first = await pull(registry.url, 'cf/dev/commands', 'g-1');
    assert.equal((await configOf(registry.url, 'cf/dev/commands', first.json)).config.Cmd?.at(-1), './one.sh');
    assert.equal((await upload(registry.url, 'cf/dev/commands', 'g-2', await buildDroplet({ startCommand: './two.sh' }))).status, 201);
    const latest = await pull(registry.url, 'cf/dev/commands', 'latest');
    assert.equal((await configOf(registry.url, 'cf/dev/commands', latest.json)).config.Cmd?.at(-1), './two.sh');
    const again = await pull(registry.url, 'cf/dev/commands', 'g-1');
    assert.equal(again.digest, first.digest);
    assert.equal((await configOf(registry.url, 'cf/dev/commands', again.json)).config.Cmd?.at(-1), './one.sh');
  });

  test('guids are immutable: same bytes again 201 and nothing changes; other bytes 409 DENIED', async () => {
    const first = await buildDroplet({ greeting: 'first' });
    const created = await upload(registry.url, 'cf/dev/immutable', 'g-1', first);
    assert.equal(created.status, 201);
    const layer = await created.text();
    const before = await pull(registry.url, 'cf/dev/immutable', 'g-1');
    const again = await upload(registry.url, 'cf/dev/immutable', 'g-1', first);
    assert.equal(again.status, 201);
    assert.equal(await again.text(), layer);
    const conflict = await upload(registry.url, 'cf/dev/immutable', 'g-1', await buildDroplet({ greeting: 'other' }));
    assert.equal(conflict.status, 409);
    const error = ((await conflict.json()) as { errors: { code: string; message: string }[] }).errors[0];
    assert.equal(error?.code, 'DENIED');
    assert.match(error?.message ?? '', /droplet g-1 of app dev\/immutable was uploaded before with other bytes .*upload new bytes under a new guid/);
    assert.equal((await pull(registry.url, 'cf/dev/immutable', 'g-1')).digest, before.digest, 'the tag still names the first droplet');
  });

  test('DELETE /v2/<name>/manifests/<guid> forgets an uploaded droplet; latest is the one before', async () => {
    assert.equal((await upload(registry.url, 'cf/dev/deleting', 'g-1', await buildDroplet({ greeting: 'one' }))).status, 201);
    assert.equal((await upload(registry.url, 'cf/dev/deleting', 'g-2', await buildDroplet({ greeting: 'two' }))).status, 201);
    const second = await pull(registry.url, 'cf/dev/deleting', 'g-2');
    const first = await pull(registry.url, 'cf/dev/deleting', 'g-1');
    const removed = await fetch(`${registry.url}/v2/cf/dev/deleting/manifests/g-2`, { method: 'DELETE' });
    assert.equal(removed.status, 202);
    assert.equal((await pull(registry.url, 'cf/dev/deleting', 'g-2')).response.status, 404);
    assert.equal((await pull(registry.url, 'cf/dev/deleting', second.digest as string)).response.status, 404, 'its images go too');
    assert.equal((await pull(registry.url, 'cf/dev/deleting', 'latest')).digest, first.digest);
    const byDigest = await fetch(`${registry.url}/v2/cf/dev/deleting/manifests/${first.digest}`, { method: 'DELETE' });
    assert.equal(byDigest.status, 202, 'the digest of one of its images names the droplet too');
    assert.equal((await pull(registry.url, 'cf/dev/deleting', 'latest')).response.status, 404);
    const again = await fetch(`${registry.url}/v2/cf/dev/deleting/manifests/g-1`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    const latest = await fetch(`${registry.url}/v2/cf/dev/other/manifests/latest`, { method: 'DELETE' });
    assert.equal(latest.status, 405, 'a droplet is deleted by its guid');
  });

  test('deleting a droplet needs delete on the repository; registry.deletes: false refuses it', async () => {
    const users = { pusher: 'p-pass', admin: 'a-pass' };
    const grants: Record<string, ('pull' | 'push' | 'delete')[]> = { pusher: ['pull', 'push'], admin: ['pull', 'push', 'delete'] };
    const rules = { rules: [{ repositories: 'cf/**', grants }] };
    const secured = await startTestRegistry({
      ...(await authSettings(files.path, { users, rules })),
      repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs: rootfsPath }],
    });
    try {
      const post = await fetch(`${secured.url}/v2/cf/dev/guarded/blobs/?guid=g-1`, {
        method: 'POST',
        body: await buildDroplet(),
        headers: { authorization: basic('pusher', 'p-pass') },
      });
      assert.equal(post.status, 201);
      const remove = (user: string, password: string) =>
        fetch(`${secured.url}/v2/cf/dev/guarded/manifests/g-1`, { method: 'DELETE', headers: { authorization: basic(user, password) } });
      assert.equal((await remove('pusher', 'p-pass')).status, 403, 'push is not delete');
      assert.equal((await remove('admin', 'a-pass')).status, 202);
    } finally {
      await secured.close();
    }
    const noDeletes = await startTestRegistry({ 'registry.deletes': false, repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs: rootfsPath }] });
    try {
      assert.equal((await upload(noDeletes.url, 'cf/dev/kept', 'g-1', await buildDroplet())).status, 201);
      assert.equal((await fetch(`${noDeletes.url}/v2/cf/dev/kept/manifests/g-1`, { method: 'DELETE' })).status, 405);
    } finally {
      await noDeletes.close();
    }
  });

  test('garbage collection keeps a kept droplet, composed or not, and reclaims a deleted one', async () => {
    const local = await startTestRegistry({ 'gc.gracePeriod': 0, repositories: [{ prefix: 'cf/', kind: 'droplet' }] });
    try {
      const kept = await upload(local.url, 'cf/dev/gc', 'g-kept', await buildDroplet({ greeting: 'kept' }));
      const gone = await upload(local.url, 'cf/dev/gc', 'g-gone', await buildDroplet({ greeting: 'gone' }));
      const [keptLayer, goneLayer] = [await kept.text(), await gone.text()];
      assert.equal((await fetch(`${local.url}/v2/cf/dev/gc/manifests/g-gone`, { method: 'DELETE' })).status, 202);
      // No rootfs yet, so nothing is composed: only the droplet's own record references its layer.
      await local.server.registry.operations.collect();
      const { blobs } = local.server.registry;
      assert.notEqual(await blobs.stat(keptLayer as never), undefined, 'the kept droplet keeps its layer');
      assert.equal(await blobs.stat(goneLayer as never), undefined, 'the deleted one is reclaimed');
      await kindSourceFor<DropletSource>(local.server.registry, 'cf/x').rootfs.import(rootfsPath);
      const image = await pull(local.url, 'cf/dev/gc', 'g-kept');
      assert.equal(image.response.status, 200, image.text);
      for (const blob of [image.json.config, ...image.json.layers]) assert.equal((await fetch(`${local.url}/v2/cf/dev/gc/blobs/${blob.digest}`)).status, 200);
    } finally {
      await local.close();
    }
  });

  test('other process types: <guid>.<type> runs the Procfile entry; an unknown type is 404', async () => {
    const extra = [{ name: './app/Procfile', mode: 0o644, body: 'web: ./start.sh\nworker: ./worker.sh --queue jobs\n' }];
    assert.equal((await upload(registry.url, 'cf/dev/procs', 'g-1', await buildDroplet({ extra }))).status, 201);
    const web = await pull(registry.url, 'cf/dev/procs', 'g-1');
    const worker = await pull(registry.url, 'cf/dev/procs', 'g-1.worker');
    assert.equal(worker.response.status, 200, worker.text);
    assert.notEqual(worker.digest, web.digest);
    const config = await configOf(registry.url, 'cf/dev/procs', worker.json);
    assert.equal(config.config.Cmd?.at(-1), './worker.sh --queue jobs');
    assert.equal(config.config.Labels['org.cloudfoundry.process.type'], 'worker');
    assert.match(config.config.Env.find((entry) => entry.startsWith('VCAP_APPLICATION=')) ?? '', /"process_type":"worker"/);
    assert.equal((await configOf(registry.url, 'cf/dev/procs', web.json)).config.Cmd?.at(-1), './start.sh', 'staging_info.yml for web');
    assert.equal((await pull(registry.url, 'cf/dev/procs', 'latest.worker')).digest, worker.digest);
    const unknown = await pull(registry.url, 'cf/dev/procs', 'g-1.clock');
    assert.equal(unknown.response.status, 404);
    assert.match(unknown.json.errors?.[0]?.message ?? '', /has no process type clock/);
    assert.equal((await upload(registry.url, 'cf/dev/procs', 'g.2', await buildDroplet())).status, 400, 'a "." in a guid would be read as a process type');
  });

  test('the rootfs only moves forward: an older file touched again does not roll images back; rollback does, on purpose', async () => {
    assert.equal((await upload(registry.url, 'cf/dev/base', 'g-1', await buildDroplet())).status, 201);
    const onV1 = await pull(registry.url, 'cf/dev/base', 'g-1');
    const v2 = join(files.path, 'v2.tar');
    await writeRootfs(v2, 'v2', false);
    const imported = await droplets().rootfs.import(v2);
    assert.equal(imported.latest, true);
    const onV2 = await pull(registry.url, 'cf/dev/base', 'g-1');
    assert.equal(onV2.json.layers[0]?.digest, imported.digest);

    // A redeploy touches the configured (older) file: it is noticed, but the latest stays v2.
    const later = new Date(Date.now() + 5000);
    await utimes(rootfsPath, later, later);
    await pull(registry.url, 'cf/dev/base', 'g-1');
    await droplets().rootfs.settled();
    assert.equal((await pull(registry.url, 'cf/dev/base', 'g-1')).digest, onV2.digest, 'still on v2');

    const back = await droplets().rootfs.rollback();
    assert.equal(back.digest, onV1.json.layers[0]?.digest);
    assert.equal((await pull(registry.url, 'cf/dev/base', 'g-1')).digest, onV1.digest, 'an explicit rollback goes back');
    const rootfsImage = await pull(registry.url, 'cf/rootfs', 'latest');
    assert.equal(rootfsImage.response.status, 200, rootfsImage.text);
    assert.deepEqual(
      rootfsImage.json.layers.map((layer) => layer.digest),
      [back.digest],
      'cf/rootfs:latest is the rootfs itself',
    );
  });
});
