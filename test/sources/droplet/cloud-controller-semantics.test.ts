import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { FsBlobStore } from '../../../src/blobs/fs/fs-blob-store.ts';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import { convertDroplet } from '../../../src/sources/droplet/droplet-layer.ts';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { CloudFoundryStub } from './cloud-foundry-stub.ts';
import { buildDroplet, vcap, writeRootfs } from './fixtures.ts';

const guids = {
  org: '1d1c5d7e-0000-4000-8000-000000000001',
  space: '1d1c5d7e-0000-4000-8000-000000000002',
  shop: '7f8a2b3c-1111-4000-8000-000000000003',
  previous: 'b1000000-2222-4000-8000-000000000002',
  current: 'b1000000-2222-4000-8000-000000000003',
  corrupt: 'b1000000-2222-4000-8000-000000000005',
};

interface ManifestJson {
  config: { digest: string };
  layers: { digest: string }[];
}

interface ImageConfig {
  created: string;
  config: { Cmd?: string[]; Env: string[]; Labels: Record<string, string> };
}

let stub: CloudFoundryStub;
let registry: TestRegistry;
let files: { path: string; remove(): Promise<void> };
let corruptBits: Buffer;

function ccConfig(overrides: Record<string, unknown> = {}) {
  return {
    prefix: 'cf/',
    kind: 'droplet',
    rootfs: join(files.path, 'rootfs.tar'),
    environment: { JBP_CONFIG_OPEN_JDK_JRE: '{ jre: { version: 17.+ } }' },
    cloudController: { url: stub.ccUrl, clientId: stub.clientId, clientSecret: stub.clientSecret, timeout: '2s', lookupCacheTtl: 0, ...overrides },
  };
}

async function pull(url: string, name: string, reference: string) {
  const response = await fetch(`${url}/v2/${name}/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
  const text = await response.text();
  return { response, text, digest: response.headers.get('docker-content-digest'), json: JSON.parse(text) as ManifestJson & { errors?: { code: string; message: string }[] } };
}

async function configOf(name: string, manifest: ManifestJson): Promise<ImageConfig> {
  return (await (await fetch(`${registry.url}/v2/${name}/blobs/${manifest.config.digest}`)).json()) as ImageConfig;
}

const envOf = (config: ImageConfig) => Object.fromEntries(config.config.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));

before(async () => {
  files = await tempDir('berth-cc-semantics');
  await writeRootfs(join(files.path, 'rootfs.tar'), 'one', false);
  stub = new CloudFoundryStub();
  await stub.start();
  stub.orgs = [{ guid: guids.org, name: 'acme' }];
  stub.spaces = [{ guid: guids.space, name: 'dev', parent: guids.org }];
  stub.apps = [{ guid: guids.shop, name: 'shop', spaceGuid: guids.space, currentDroplet: guids.current, webCommand: 'bin/web --tuned', memoryInMb: 768, diskInMb: 2048 }];
  corruptBits = await buildDroplet({ greeting: 'corrupt' });
  const droplet = (guid: string, createdAt: string, extra: Partial<(typeof stub.droplets)[number]> = {}) => ({
    guid,
    appGuid: guids.shop,
    state: 'STAGED' as const,
    createdAt,
    ...extra,
  });
  stub.droplets = [
    droplet(guids.previous, '2024-04-01T10:00:00Z', {
      bits: await buildDroplet({ greeting: 'previous' }),
      webProcessType: 'bin/previous',
      processTypes: { worker: 'bin/worker-previous' },
    }),
    droplet(guids.current, '2024-06-01T10:00:00Z', { bits: await buildDroplet({ greeting: 'current' }), webProcessType: 'bin/current', processTypes: { worker: 'bin/worker' } }),
    droplet(guids.corrupt, '2024-06-02T10:00:00Z', { bits: corruptBits, checksum: 'wrong' }),
  ];
  registry = await startTestRegistry({ repositories: [ccConfig()] });
});

after(async () => {
  await registry?.close();
  await stub?.close();
  await files?.remove();
});

describe('Cloud Controller droplets: what CF promises', () => {
  test("each droplet starts with its own command; the app's process command applies to latest only", async () => {
    const latest = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
    assert.equal(latest.response.status, 200, latest.text);
    assert.equal((await configOf('cf/acme/dev/shop', latest.json)).config.Cmd?.at(-1), 'bin/web --tuned', 'the command set on the web process');
    const current = await pull(registry.url, 'cf/acme/dev/shop', guids.current);
    assert.equal((await configOf('cf/acme/dev/shop', current.json)).config.Cmd?.at(-1), 'bin/current', "the current droplet's own command");
    const previous = await pull(registry.url, 'cf/acme/dev/shop', guids.previous);
    assert.equal((await configOf('cf/acme/dev/shop', previous.json)).config.Cmd?.at(-1), 'bin/previous');

    // The app moves to another droplet: guid tags keep their digests.
    const app = stub.apps[0];
    assert.ok(app !== undefined);
    app.currentDroplet = guids.previous;
    try {
      assert.equal((await pull(registry.url, 'cf/acme/dev/shop', guids.current)).digest, current.digest);
      assert.equal((await pull(registry.url, 'cf/acme/dev/shop', guids.previous)).digest, previous.digest);
    } finally {
      app.currentDroplet = guids.current;
    }
  });

  test("the image's created is the droplet's creation time in the Cloud Controller", async () => {
    const previous = await pull(registry.url, 'cf/acme/dev/shop', guids.previous);
    assert.equal((await configOf('cf/acme/dev/shop', previous.json)).created, '2024-04-01T10:00:00.000Z');
  });

  test("Cloud Foundry's environment: VCAP_APPLICATION, MEMORY_LIMIT, instance index, then the operator's variables", async () => {
    const latest = await pull(registry.url, `cf/${guids.shop}`, 'latest');
    const env = envOf(await configOf(`cf/${guids.shop}`, latest.json));
    assert.deepEqual(JSON.parse(env['VCAP_APPLICATION'] ?? '{}'), {
      application_id: guids.shop,
      application_name: 'shop',
      application_uris: [],
      cf_api: stub.ccUrl,
      limits: { fds: 16384, disk: 2048, mem: 768 },
      name: 'shop',
      organization_id: guids.org,
      organization_name: 'acme',
      process_type: 'web',
      space_id: guids.space,
      space_name: 'dev',
      uris: [],
    });
    assert.equal(env['MEMORY_LIMIT'], '768m');
    assert.equal(env['INSTANCE_INDEX'], '0');
    assert.equal(env['CF_INSTANCE_INDEX'], '0');
    assert.equal(env['JBP_CONFIG_OPEN_JDK_JRE'], '{ jre: { version: 17.+ } }');
    assert.equal(env['VCAP_SERVICES'], undefined, 'services and their credentials come at run time');
  });

  test("other process types: latest.<type> and <guid>.<type> run that process's command", async () => {
    const worker = await pull(registry.url, 'cf/acme/dev/shop', 'latest.worker');
    assert.equal(worker.response.status, 200, worker.text);
    const config = await configOf('cf/acme/dev/shop', worker.json);
    assert.equal(config.config.Cmd?.at(-1), 'bin/worker');
    assert.equal(config.config.Labels['org.cloudfoundry.process.type'], 'worker');
    const previous = await pull(registry.url, 'cf/acme/dev/shop', `${guids.previous}.worker`);
    assert.equal((await configOf('cf/acme/dev/shop', previous.json)).config.Cmd?.at(-1), 'bin/worker-previous');
    const none = await pull(registry.url, 'cf/acme/dev/shop', 'latest.clock');
    assert.equal(none.response.status, 404);
    assert.equal(none.json.errors?.[0]?.code, 'MANIFEST_UNKNOWN');
  });

  test('droplets belong to the Cloud Controller: DELETE is 405 UNSUPPORTED and the image stays', async () => {
    const before = await pull(registry.url, 'cf/acme/dev/shop', guids.previous);
    const response = await fetch(`${registry.url}/v2/cf/acme/dev/shop/manifests/${guids.previous}`, { method: 'DELETE' });
    assert.equal(response.status, 405);
    assert.equal(((await response.json()) as { errors: { code: string }[] }).errors[0]?.code, 'UNSUPPORTED');
    assert.equal((await pull(registry.url, 'cf/acme/dev/shop', guids.previous)).digest, before.digest);
  });

  test('a droplet whose bits do not match the checksum: 502, and its converted layer is removed at once', async () => {
    const scratch = await FsBlobStore.open(join(files.path, 'scratch'));
    const expected = await convertDroplet(scratch, Readable.from([corruptBits]), vcap);
    const result = await pull(registry.url, 'cf/acme/dev/shop', guids.corrupt);
    assert.equal(result.response.status, 502);
    assert.equal(await registry.server.registry.blobs.stat(expected.layer.digest), undefined, 'no converted layer left for GC to find');
  });

  test('a Cloud Controller or UAA failure: the cause is in the OCI message and in the status line docker prints', async () => {
    stub.unavailable = true;
    try {
      const result = await pull(registry.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(result.response.status, 503);
      assert.match(result.json.errors?.[0]?.message ?? '', /answered HTTP 503 \(CF-ServiceUnavailable: The service is currently unavailable\)/);
      assert.match(result.response.statusText, /the Cloud Controller \(GET .*\) answered HTTP 503 \(CF-ServiceUnavailable/);
    } finally {
      stub.unavailable = false;
    }
    const secret = 'wrong-secret-not-to-leak';
    const local = await startTestRegistry({ repositories: [ccConfig({ clientSecret: secret })] });
    try {
      const result = await pull(local.url, 'cf/acme/dev/shop', 'latest');
      assert.equal(result.response.status, 503);
      assert.match(result.response.statusText, /UAA at .* refused the client credentials of "berth-registry": HTTP 401/);
      assert.ok(!result.text.includes(secret) && !result.response.statusText.includes(secret), 'the secret is never in an answer');
    } finally {
      await local.close();
    }
  });
});
