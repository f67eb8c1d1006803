import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import type { DropletSource } from '../../../src/sources/droplet/droplet-source.ts';
import { startTestRegistry, type TestRegistry, kindSourceFor } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { closedPort, CloudFoundryStub } from './cloud-foundry-stub.ts';
import { buildDroplet, writeRootfs } from './fixtures.ts';

const guids = {
  org: '0d1c5d7e-0000-4000-8000-000000000001',
  space: '0d1c5d7e-0000-4000-8000-000000000002',
  shop: '6f8a2b3c-1111-4000-8000-000000000003',
  empty: '6f8a2b3c-1111-4000-8000-000000000004',
  docker: '6f8a2b3c-1111-4000-8000-000000000005',
  old: 'a1000000-2222-4000-8000-000000000001',
  previous: 'a1000000-2222-4000-8000-000000000002',
  current: 'a1000000-2222-4000-8000-000000000003',
  staging: 'a1000000-2222-4000-8000-000000000004',
  corrupt: 'a1000000-2222-4000-8000-000000000005',
  image: 'a1000000-2222-4000-8000-000000000006',
};

interface ManifestJson {
  config: { digest: string };
  layers: { digest: string; mediaType: string }[];
}

let stub: CloudFoundryStub;
let registry: TestRegistry;
let files: { path: string; remove(): Promise<void> };
let rootfsPath: string;

function ccConfig(overrides: Record<string, unknown> = {}) {
  return {
    prefix: 'cf/',
    kind: 'droplet',
    rootfs: rootfsPath,
    rootfsCheckInterval: 0,
    cloudController: { url: stub.ccUrl, clientId: stub.clientId, clientSecret: stub.clientSecret, timeout: '2s', lookupCacheTtl: 0, ...overrides },
  };
}

async function pull(url: string, name: string, reference: string) {
  const response = await fetch(`${url}/v2/${name}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
  const text = await response.text();
  return { response, text, json: JSON.parse(text) as ManifestJson & { errors?: { code: string; message: string }[] } };
}

async function labelsOf(name: string, manifest: ManifestJson): Promise<Record<string, string>> {
  const response = await fetch(`${registry.url}/v2/${name}/blobs/${manifest.config.digest}`);
  return ((await response.json()) as { config: { Labels: Record<string, string>; Cmd?: string[] } }).config.Labels;
}

async function cmdOf(name: string, manifest: ManifestJson): Promise<string | undefined> {
  const response = await fetch(`${registry.url}/v2/${name}/blobs/${manifest.config.digest}`);
  return ((await response.json()) as { config: { Cmd?: string[] } }).config.Cmd?.at(-1);
}

before(async () => {
  files = await tempDir('berth-cc');
  rootfsPath = join(files.path, 'rootfs.tar');
  await writeRootfs(rootfsPath, 'one', false);
  stub = new CloudFoundryStub();
  await stub.start();
  stub.orgs = [{ guid: guids.org, name: 'acme' }];
  stub.spaces = [{ guid: guids.space, name: 'dev', parent: guids.org }];
  stub.apps = [
    { guid: guids.shop, name: 'shop', spaceGuid: guids.space, currentDroplet: guids.current, webCommand: 'bin/web --port $PORT' },
    { guid: guids.empty, name: 'empty', spaceGuid: guids.space },
    { guid: guids.docker, name: 'docker-app', spaceGuid: guids.space, currentDroplet: guids.image },
  ];
  const droplet = (guid: string, extra: Partial<(typeof stub.droplets)[number]> = {}) => ({
    guid,
    appGuid: guids.shop,
    state: 'STAGED' as const,
    createdAt: '2024-05-01T10:00:00Z',
    ...extra,
  });
  stub.droplets = [
    droplet(guids.old, { bits: await buildDroplet({ greeting: 'old' }), createdAt: '2024-04-01T10:00:00Z' }),
    droplet(guids.previous, { bits: await buildDroplet({ greeting: 'previous' }), checksum: 'sha1', webProcessType: 'bin/previous' }),
    droplet(guids.current, { bits: await buildDroplet({ greeting: 'current' }), createdAt: '2024-06-01T10:00:00Z' }),
    droplet(guids.staging, { state: 'PROCESSING_UPLOAD' }),
    droplet(guids.corrupt, { bits: await buildDroplet({ greeting: 'corrupt' }), checksum: 'wrong' }),
    droplet(guids.image, { appGuid: guids.docker, lifecycle: 'docker' }),
  ];
  registry = await startTestRegistry({ repositories: [ccConfig()] });
});

after(async () => {
  await registry?.close();
  await stub?.close();
  await files?.remove();
});

describe('droplet repositories: Cloud Controller', () => {
  test('<org>/<space>/<app>:latest is the current droplet, downloaded once through the blobstore redirect', async () => {
    const first = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    assert.equal(first.response.status, 200, first.text);
    const labels = await labelsOf('cf/acme/dev/shop', first.json);
    assert.equal(labels['org.cloudfoundry.droplet.guid'], guids.current);
    assert.equal(labels['org.cloudfoundry.app.guid'], guids.shop);
    assert.equal(labels['org.cloudfoundry.app.name'], 'shop');
    assert.equal(await cmdOf('cf/acme/dev/shop', first.json), 'bin/web --port $PORT', "the web process's command");
    assert.equal(stub.counts.downloads, 1);
    assert.equal(stub.counts.blobstoreRefusedAuthorization, 0, 'the redirect is followed without the Authorization header');

    const byGuid = await pull(registry.url, `cf/${guids.shop}`, 'latest');
    assert.equal(byGuid.response.status, 200);
    assert.equal(byGuid.response.headers.get('docker-content-digest'), first.response.headers.get('docker-content-digest'), 'the app guid names the same image');
    for (const layer of byGuid.json.layers) {
      const head = await fetch(`${registry.url}/v2/cf/${guids.shop}/blobs/${layer.digest}`, { method: 'HEAD' });
      assert.equal(head.status, 200);
    }
    assert.equal(stub.counts.downloads, 1, 'the converted droplet is reused');
  });

  test('a droplet guid as tag names that droplet (sha1 checksums verified too)', async () => {
    const previous = await pull(registry.url, 'cf/acme/dev/shop', guids.previous);
    assert.equal(previous.response.status, 200, previous.text);
    assert.equal((await labelsOf('cf/acme/dev/shop', previous.json))['org.cloudfoundry.droplet.guid'], guids.previous);
  });

  test('concurrent pulls of a droplet not yet converted download it once', async () => {
    const before = stub.counts.downloads;
    const results = await Promise.all([1, 2, 3].map(() => pull(registry.url, 'cf/acme/dev/shop', guids.old)));
    for (const result of results) assert.equal(result.response.status, 200, result.text);
    assert.equal(new Set(results.map((result) => result.text)).size, 1);
    assert.equal(stub.counts.downloads, before + 1);
  });

  test('tags are the STAGED droplets across every page of the listing, and latest', async () => {
    const response = await fetch(`${registry.url}/v2/cf/acme/dev/shop/tags/list`);
    assert.equal(response.status, 200);
    assert.deepEqual(((await response.json()) as { tags: string[] }).tags, [guids.old, guids.previous, guids.current, guids.corrupt, 'latest'].sort());
  });

  test('errors name what is missing', async () => {
    const cases: [string, string, number, string, RegExp][] = [
      ['cf/nope/dev/shop', 'latest', 404, 'NAME_UNKNOWN', /no org is named nope/],
      ['cf/acme/prod/shop', 'latest', 404, 'NAME_UNKNOWN', /org acme has no space prod/],
      ['cf/acme/dev/nothing', 'latest', 404, 'NAME_UNKNOWN', /space acme\/dev has no app nothing/],
      ['cf/acme/dev', 'latest', 404, 'NAME_UNKNOWN', /<org>\/<space>\/<app> or <app guid>/],
      ['cf/0000-not-an-app', 'latest', 404, 'NAME_UNKNOWN', /no app has the guid/],
      ['cf/acme/dev/empty', 'latest', 404, 'MANIFEST_UNKNOWN', /has no current droplet/],
      ['cf/acme/dev/shop', guids.staging, 404, 'MANIFEST_UNKNOWN', /PROCESSING_UPLOAD, not STAGED/],
      ['cf/acme/dev/shop', 'b0000000-0000-4000-8000-000000000000', 404, 'MANIFEST_UNKNOWN', /has no droplet/],
      ['cf/acme/dev/docker-app', 'latest', 404, 'MANIFEST_UNKNOWN', /runs the Docker image example\/app:1/],
      ['cf/acme/dev/shop', guids.corrupt, 502, 'UNKNOWN', /does not match the Cloud Controller's sha256 checksum/],
    ];
    for (const [name, reference, status, code, message] of cases) {
      const result = await pull(registry.url, name, reference);
      assert.equal(result.response.status, status, `${name}:${reference} ${result.text}`);
      assert.equal(result.json.errors?.[0]?.code, code, `${name}:${reference}`);
      assert.match(result.json.errors?.[0]?.message ?? '', message);
    }
    const upload = await fetch(`${registry.url}/v2/cf/acme/dev/shop/blobs/?guid=x`, { method: 'POST', body: 'x' });
    assert.equal(upload.status, 405, 'droplets come from the Cloud Controller here');
  });

  test('an expired token gets a 401, and the request is retried once with a new token', async () => {
    const tokens = stub.counts.tokens;
    const unauthorized = stub.counts.unauthorized;
    stub.expireTokens();
    const result = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    assert.equal(result.response.status, 200, result.text);
    assert.equal(stub.counts.unauthorized, unauthorized + 1);
    assert.equal(stub.counts.tokens, tokens + 1);
  });

  test('the client secret can come from a file (a mounted secret)', async () => {
    const secretFile = join(files.path, 'client-secret');
    await writeFile(secretFile, `${stub.clientSecret}\n`);
    const local = await startTestRegistry({ repositories: [ccConfig({ clientSecret: undefined, clientSecretFile: secretFile })] });
    try {
      const result = await pull(local.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(result.response.status, 200, result.text);
    } finally {
      await local.close();
    }
  });

  test('a token is renewed before its expires_in runs out', async (t) => {
    const local = await startTestRegistry({ repositories: [ccConfig()] });
    stub.tokenLifetimeSeconds = 2;
    // Only Date moves, and only when told: the client and the stub share the clock.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      assert.equal((await pull(local.url, 'cf/acme/dev/shop', 'latest')).response.status, 200);
      const tokens = stub.counts.tokens;
      const unauthorized = stub.counts.unauthorized;
      // Within the token's lifetime, but inside the renewal margin (a quarter of it).
      t.mock.timers.tick(1600);
      assert.equal((await pull(local.url, 'cf/acme/dev/shop', 'latest')).response.status, 200);
      assert.equal(stub.counts.tokens, tokens + 1, 'a new token was fetched');
      assert.equal(stub.counts.unauthorized, unauthorized, 'no request went out with an expired token');
    } finally {
      stub.tokenLifetimeSeconds = 3600;
      await local.close();
    }
  });

  test('a replaced rootfs gives a new digest without downloading or converting the droplet again', async () => {
    const before = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    const downloads = stub.counts.downloads;
    await writeRootfs(rootfsPath, 'two', false);
    const source = kindSourceFor<DropletSource>(registry.server.registry, 'cf/x');
    await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    await source.rootfs.settled();
    const afterwards = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    assert.notEqual(afterwards.response.headers.get('docker-content-digest'), before.response.headers.get('docker-content-digest'));
    assert.equal(afterwards.json.layers[1]?.digest, before.json.layers[1]?.digest, 'same droplet layer');
    assert.notEqual(afterwards.json.layers[0]?.digest, before.json.layers[0]?.digest, 'new rootfs layer');
    assert.equal(stub.counts.downloads, downloads, 'no download');
    const old = await pull(registry.url, 'cf/acme/dev/shop', before.response.headers.get('docker-content-digest') as string);
    assert.equal(old.response.status, 200, 'the earlier composition stays pullable by digest');
  });

  test('a Cloud Controller that does not answer: 503 after the timeout; digests still served', async () => {
    const pinned = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    const digest = pinned.response.headers.get('docker-content-digest') as string;
    stub.hang = true;
    try {
      const result = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(result.response.status, 503);
      assert.match(result.json.errors?.[0]?.message ?? '', /did not answer within 2000 ms/);
      const byDigest = await pull(registry.url, 'cf/acme/dev/shop', digest);
      assert.equal(byDigest.response.status, 200, 'a pinned pull needs no Cloud Controller');
    } finally {
      stub.hang = false;
    }
  });

  test('a download that stalls fails with 503 after the idle timeout, and nothing is kept', async () => {
    const local = await startTestRegistry({ repositories: [ccConfig({ downloadIdleTimeout: '300ms' })] });
    stub.stallDownloads = true;
    try {
      const result = await pull(local.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(result.response.status, 503);
      assert.match(result.json.errors?.[0]?.message ?? '', /the droplet download stalled: no bytes for 300 ms/);
      stub.stallDownloads = false;
      const retry = await pull(local.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(retry.response.status, 200, 'the next pull downloads it again');
    } finally {
      stub.stallDownloads = false;
      await local.close();
    }
  });

  test('UAA refusing the client, or a Cloud Controller that is unreachable: 503 saying so', async () => {
    const port = await closedPort();
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ clientSecret: 'wrong' }, /UAA at .* refused the client credentials of "berth-registry": HTTP 401 unauthorized: Bad credentials/],
      [{ url: `http://127.0.0.1:${port}` }, new RegExp(`the Cloud Controller at http://127\\.0\\.0\\.1:${port} is unreachable \\(ECONNREFUSED\\)`)],
    ];
    for (const [overrides, message] of cases) {
      const local = await startTestRegistry({ repositories: [ccConfig(overrides)] });
      try {
        const result = await pull(local.url, 'cf/acme/dev/shop', 'latest');
        assert.equal(result.response.status, 503);
        assert.equal(result.json.errors?.[0]?.code, 'UNKNOWN');
        assert.match(result.json.errors?.[0]?.message ?? '', message);
      } finally {
        await local.close();
      }
    }
  });
});
