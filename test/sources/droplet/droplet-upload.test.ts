import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import type { DropletSource } from '../../../src/sources/droplet/droplet-source.ts';
import { startTestRegistry, type TestRegistry, kindSourceFor } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { buildDroplet, writeRootfs } from './fixtures.ts';

const dropletGuid = '3f1b6c1e-6a53-4c55-9a43-2f5c0c5b5a11';
const secondGuid = '9d2e7f00-1b2c-4d3e-8f40-5a6b7c8d9e0f';

interface ManifestJson {
  mediaType: string;
  config: { mediaType: string; digest: string; size: number };
  layers: { mediaType: string; digest: string; size: number }[];
}

let registry: TestRegistry;
let files: { path: string; remove(): Promise<void> };
let rootfsPath: string;

async function upload(name: string, guid: string, body: Buffer): Promise<Response> {
  return fetch(`${registry.url}/v2/${name}/blobs/?guid=${guid}`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
}

async function manifest(name: string, reference: string, accept: string = mediaTypes.ociManifest) {
  const response = await fetch(`${registry.url}/v2/${name}/manifests/${reference}`, { headers: { accept } });
  const text = await response.text();
  return { response, text, json: response.ok ? (JSON.parse(text) as ManifestJson) : undefined };
}

async function configOf(name: string, json: ManifestJson): Promise<Record<string, unknown>> {
  const response = await fetch(`${registry.url}/v2/${name}/blobs/${json.config.digest}`);
  assert.equal(response.status, 200);
  return (await response.json()) as Record<string, unknown>;
}

function droplets(): DropletSource {
  return kindSourceFor<DropletSource>(registry.server.registry, 'cf/x');
}

before(async () => {
  files = await tempDir('berth-droplet-files');
  rootfsPath = join(files.path, 'cflinuxfs.tar.gz');
  await writeRootfs(rootfsPath, 'one', true);
  registry = await startTestRegistry({
    repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs: rootfsPath, rootfsCheckInterval: 0, previousRootfsRetention: '1h', environment: { RELEASE_CHANNEL: 'test' } }],
  });
});
after(async () => {
  await registry.close();
  await files.remove();
});

describe('droplet repositories: uploads (cube compatible)', () => {
  test('POST /v2/<space>/<app>/blobs/?guid= stores the droplet as a layer: 201 with the layer digest', async () => {
    const response = await upload('cf/dev/shop', dropletGuid, await buildDroplet());
    assert.equal(response.status, 201);
    const digest = await response.text();
    assert.match(digest, /^sha256:[a-f0-9]{64}$/);
    assert.equal(response.headers.get('docker-content-digest'), digest);
    assert.equal(response.headers.get('location'), `/v2/cf/dev/shop/manifests/${dropletGuid}`);
  });

  test('the droplet is pullable by guid and as latest, composed on the rootfs', async () => {
    const byGuid = await manifest('cf/dev/shop', dropletGuid);
    assert.equal(byGuid.response.status, 200);
    assert.equal(byGuid.response.headers.get('content-type'), mediaTypes.ociManifest);
    const digest = byGuid.response.headers.get('docker-content-digest');
    assert.equal(digest, `sha256:${createHash('sha256').update(byGuid.text).digest('hex')}`);
    const json = byGuid.json as ManifestJson;
    assert.equal(json.mediaType, mediaTypes.ociManifest);
    assert.equal(json.config.mediaType, mediaTypes.ociConfig);
    assert.deepEqual(
      json.layers.map((layer) => layer.mediaType),
      [mediaTypes.ociLayerGzip, mediaTypes.ociLayerGzip],
    );

    const latest = await manifest('cf/dev/shop', 'latest');
    assert.equal(latest.text, byGuid.text, 'one droplet: latest is it');

    const config = await configOf('cf/dev/shop', json);
    assert.equal(config['os'], 'linux');
    assert.equal(config['architecture'], 'amd64');
    const runtime = config['config'] as Record<string, unknown>;
    assert.equal(runtime['User'], '2000:2000');
    assert.equal(runtime['WorkingDir'], '/home/vcap/app');
    assert.deepEqual(runtime['Env'], [
      'HOME=/home/vcap/app',
      'PORT=8080',
      'LANG=en_US.UTF-8',
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'TMPDIR=/home/vcap/tmp',
      'DEPS_DIR=/home/vcap/deps',
      'USER=vcap',
      'VCAP_APPLICATION={"application_id":null,"application_name":"dev/shop","application_uris":[],"limits":{"fds":16384},"name":"dev/shop","process_type":"web","uris":[]}',
      'VCAP_APP_HOST=0.0.0.0',
      'VCAP_APP_PORT=8080',
      'INSTANCE_INDEX=0',
      'CF_INSTANCE_INDEX=0',
      'RELEASE_CHANNEL=test',
    ]);
    assert.equal(config['created'], '1970-01-01T00:00:00.000Z', 'uploads have no creation time of their own: a fixed one');
    const cmd = runtime['Cmd'] as string[];
    assert.deepEqual([cmd[0], cmd[1], cmd.at(-1)], ['/bin/bash', '-c', './start.sh']);
    const labels = runtime['Labels'] as Record<string, string>;
    assert.equal(labels['org.cloudfoundry.droplet.guid'], dropletGuid);
    assert.equal(labels['org.cloudfoundry.app.name'], 'dev/shop');
    assert.equal(labels['org.cloudfoundry.rootfs.digest'], json.layers[0]?.digest);
    const rootfs = config['rootfs'] as { type: string; diff_ids: string[] };
    assert.equal(rootfs.type, 'layers');
    assert.equal(rootfs.diff_ids.length, 2);

    for (const blob of [json.config, ...json.layers]) {
      const head = await fetch(`${registry.url}/v2/cf/dev/shop/blobs/${blob.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200, blob.digest);
      assert.equal(head.headers.get('content-length'), String(blob.size));
      const get = await fetch(`${registry.url}/v2/cf/dev/shop/blobs/${blob.digest}`);
      const bytes = Buffer.from(await get.arrayBuffer());
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, blob.digest);
    }
  });

  test('the same droplet on the same rootfs always has the same digest; by digest it is served as stored', async () => {
    const first = await manifest('cf/dev/shop', dropletGuid);
    const again = await manifest('cf/dev/shop', dropletGuid);
    assert.equal(again.text, first.text);
    const digest = first.response.headers.get('docker-content-digest') as string;
    const byDigest = await manifest('cf/dev/shop', digest, mediaTypes.dockerManifest);
    assert.equal(byDigest.response.status, 200);
    assert.equal(byDigest.text, first.text, 'a digest pins the bytes whatever the Accept header');
  });

  test('a client that accepts only Docker schema 2 gets Docker media types for the same config and layers', async () => {
    const oci = (await manifest('cf/dev/shop', dropletGuid)).json as ManifestJson;
    const docker = await manifest('cf/dev/shop', dropletGuid, mediaTypes.dockerManifest);
    assert.equal(docker.response.status, 200);
    assert.equal(docker.response.headers.get('content-type'), mediaTypes.dockerManifest);
    const json = docker.json as ManifestJson;
    assert.equal(json.mediaType, mediaTypes.dockerManifest);
    assert.equal(json.config.mediaType, mediaTypes.dockerConfig);
    assert.deepEqual(
      json.layers.map((layer) => layer.mediaType),
      [mediaTypes.dockerLayerGzip, mediaTypes.dockerLayerGzip],
    );
    assert.equal(json.config.digest, oci.config.digest);
    assert.deepEqual(
      json.layers.map((layer) => layer.digest),
      oci.layers.map((layer) => layer.digest),
    );
    const neither = await manifest('cf/dev/shop', dropletGuid, 'application/vnd.oci.image.index.v1+json');
    assert.equal(neither.response.status, 404);
    assert.equal((JSON.parse(neither.text) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_UNKNOWN');
  });

  test('latest is the most recently staged droplet; tags and catalog list them', async () => {
    const response = await upload('cf/dev/shop', secondGuid, await buildDroplet({ greeting: 'bonjour' }));
    assert.equal(response.status, 201);
    const latest = await manifest('cf/dev/shop', 'latest');
    const labels = ((await configOf('cf/dev/shop', latest.json as ManifestJson))['config'] as { Labels: Record<string, string> }).Labels;
    assert.equal(labels['org.cloudfoundry.droplet.guid'], secondGuid);

    const tags = await fetch(`${registry.url}/v2/cf/dev/shop/tags/list`);
    assert.deepEqual(await tags.json(), { name: 'cf/dev/shop', tags: [dropletGuid, secondGuid, 'latest'].sort() });
    const page = await fetch(`${registry.url}/v2/cf/dev/shop/tags/list?n=1&last=${dropletGuid}`);
    assert.deepEqual(((await page.json()) as { tags: string[] }).tags, [[secondGuid, 'latest'].sort()[0]]);
    const catalog = await fetch(`${registry.url}/v2/_catalog`);
    assert.ok(((await catalog.json()) as { repositories: string[] }).repositories.includes('cf/dev/shop'));
  });

  test('errors: unknown app, unknown droplet, blobs of other repositories, uploads elsewhere', async () => {
    const cases: [string, RequestInit | undefined, number, string][] = [
      ['/v2/cf/dev/nothing/manifests/latest', undefined, 404, 'NAME_UNKNOWN'],
      ['/v2/cf/dev/nothing/tags/list', undefined, 404, 'NAME_UNKNOWN'],
      ['/v2/cf/dev/shop/manifests/0000-no-such-droplet', undefined, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/cf/dev/shop/manifests/sha256:${'0'.repeat(64)}`, undefined, 404, 'MANIFEST_UNKNOWN'],
      [`/v2/cf/dev/shop/blobs/sha256:${'0'.repeat(64)}`, undefined, 404, 'BLOB_UNKNOWN'],
      ['/v2/cf/dev/shop/blobs/', { method: 'POST', body: 'x' }, 400, 'BLOB_UPLOAD_INVALID'],
      ['/v2/cf/dev/shop/blobs/?guid=latest', { method: 'POST', body: 'x' }, 400, 'TAG_INVALID'],
      ['/v2/cf/dev/shop/blobs/?guid=bad%20guid', { method: 'POST', body: 'x' }, 400, 'TAG_INVALID'],
      ['/v2/cf/dev/shop/blobs/?guid=abc', { method: 'POST', body: 'not a droplet' }, 400, 'BLOB_UPLOAD_INVALID'],
      ['/v2/cf/rootfs/blobs/?guid=abc', { method: 'POST', body: 'x' }, 400, 'NAME_INVALID'],
      ['/v2/team/app/blobs/?guid=abc', { method: 'POST', body: 'x' }, 405, 'UNSUPPORTED'],
      ['/v2/cf/dev/shop/manifests/latest', { method: 'PUT', body: '{}' }, 405, 'UNSUPPORTED'],
    ];
    for (const [path, init, status, code] of cases) {
      const response = await fetch(`${registry.url}${path}`, init);
      assert.equal(response.status, status, path);
      const body = (await response.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, code, `${path}: ${body.errors[0]?.message}`);
    }
    const otherApp = await upload('cf/dev/other', dropletGuid, await buildDroplet());
    assert.equal(otherApp.status, 201);
    const shop = (await manifest('cf/dev/shop', dropletGuid)).json as ManifestJson;
    const crossed = await fetch(`${registry.url}/v2/cf/dev/other/blobs/${shop.config.digest}`);
    assert.equal(crossed.status, 404, "a composition's config is readable only in its repository");
  });

  test('a replaced rootfs: same tag, new digest, same droplet layer; the old digest stays pullable', async () => {
    const before = await manifest('cf/dev/shop', dropletGuid);
    const oldDigest = before.response.headers.get('docker-content-digest') as string;
    const oldJson = before.json as ManifestJson;

    const replacement = join(files.path, 'replacement.tar');
    await writeRootfs(replacement, 'two', false);
    await rename(replacement, rootfsPath);
    // The check runs on demand; the import runs in the background while pulls keep the old base.
    await manifest('cf/dev/shop', dropletGuid);
    await droplets().rootfs.settled();

    const afterwards = await manifest('cf/dev/shop', dropletGuid);
    const newDigest = afterwards.response.headers.get('docker-content-digest');
    const newJson = afterwards.json as ManifestJson;
    assert.notEqual(newDigest, oldDigest);
    assert.notEqual(newJson.layers[0]?.digest, oldJson.layers[0]?.digest, 'new rootfs layer');
    assert.deepEqual(newJson.layers[1], oldJson.layers[1], 'droplet layer unchanged');

    const old = await manifest('cf/dev/shop', oldDigest);
    assert.equal(old.response.status, 200);
    assert.equal(old.text, before.text);
    const oldRootfs = await fetch(`${registry.url}/v2/cf/dev/shop/blobs/${oldJson.layers[0]?.digest}`, { method: 'HEAD' });
    assert.equal(oldRootfs.status, 200, 'the old rootfs layer is still served for in-flight pulls');
  });
});

describe('droplet repositories: retention of replaced rootfs', () => {
  test('with no retention, compositions on a replaced rootfs are gone at once', async () => {
    const temp = await tempDir('berth-droplet-retention');
    const path = join(temp.path, 'rootfs.tar');
    await writeRootfs(path, 'a', false);
    const local = await startTestRegistry({
      repositories: [{ prefix: '', kind: 'droplet', rootfs: path, rootfsCheckInterval: 0, previousRootfsRetention: 0 }],
      'gc.gracePeriod': 0,
    });
    try {
      const post = await fetch(`${local.url}/v2/space/app/blobs/?guid=g1`, { method: 'POST', body: await buildDroplet() });
      assert.equal(post.status, 201, 'a droplet kind at prefix "" takes names before hosted does');
      const first = await fetch(`${local.url}/v2/space/app/manifests/latest`);
      const digest = first.headers.get('docker-content-digest') as string;
      await writeRootfs(path, 'b', false);
      const source = kindSourceFor<DropletSource>(local.server.registry, 'space/app');
      await fetch(`${local.url}/v2/space/app/manifests/latest`);
      await source.rootfs.settled();
      const second = await fetch(`${local.url}/v2/space/app/manifests/latest`);
      assert.notEqual(second.headers.get('docker-content-digest'), digest);
      const old = await fetch(`${local.url}/v2/space/app/manifests/${digest}`);
      assert.equal(old.status, 404);

      // Garbage collection sees compositions as ordinary manifests: it keeps the current one's blobs
      // and reclaims the replaced rootfs and the config of the composition on it.
      const report = await local.server.registry.operations.collect();
      assert.ok(report !== undefined && report.blobsDeleted >= 2, `blobs deleted: ${report?.blobsDeleted}`);
      const current = (await second.json()) as ManifestJson;
      for (const blob of [current.config, ...current.layers]) {
        assert.equal((await fetch(`${local.url}/v2/space/app/blobs/${blob.digest}`)).status, 200, blob.digest);
      }
      const replaced = (await first.json()) as ManifestJson;
      const { blobs } = local.server.registry;
      assert.equal(await blobs.stat(replaced.layers[0]?.digest as never), undefined, 'the replaced rootfs is collected');
      assert.equal(await blobs.stat(replaced.config.digest as never), undefined, 'and the config of the composition on it');
      assert.notEqual(await blobs.stat(replaced.layers[1]?.digest as never), undefined, 'the droplet layer stays: the new composition uses it');
    } finally {
      await local.close();
      await temp.remove();
    }
  });

  test('without a rootfs, pulls answer 503 with what to do', async () => {
    const local = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet' }] });
    try {
      assert.equal((await fetch(`${local.url}/v2/cf/s/a/blobs/?guid=g1`, { method: 'POST', body: await buildDroplet() })).status, 201);
      const response = await fetch(`${local.url}/v2/cf/s/a/manifests/latest`);
      assert.equal(response.status, 503);
      const body = (await response.json()) as { errors: { message: string }[] };
      assert.match(body.errors[0]?.message ?? '', /berth rootfs import/);
    } finally {
      await local.close();
    }
  });
});
