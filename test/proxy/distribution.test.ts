import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { startDistribution, startTokenService, type Distribution, type TokenService } from '../helpers/distribution.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { pushImage } from '../helpers/images.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { realImage } from '../copy/fixtures.ts';
import { copy } from '../copy/transfer.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

describe('CNCF Distribution as the upstream of a cache', { skip: missingCommands('docker-registry') }, () => {
  let distribution: Distribution;
  let seed: TestRegistry;
  let cache: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    temp = await tempDir('berth-distribution-test');
    distribution = await startDistribution();
    seed = await startTestRegistry();
    cache = await startTestRegistry({ repositories: [{ prefix: 'dist/', kind: 'proxy', upstream: distribution.url }] });
  });
  after(async () => {
    await cache?.close();
    await seed?.close();
    await distribution?.close();
    await temp?.remove();
  });

  test('berth copy pushes to Distribution (chunked), and a cold pull through Berth serves the same bytes', async () => {
    const image = await realImage({ layers: 2, layerSize: 300 * 1024 });
    await pushImage(seed.url, 'src/app', '1.0', image);
    const pushed = await copy(`docker://${seed.host}/src/app:1.0`, `docker://${distribution.host}/team/app:1.0`, {
      tempDir: temp.path,
      destination: { chunkSize: 64 * 1024 },
    });
    assert.equal(pushed.code, 0, pushed.reporter.failure());
    const manifest = await fetch(`${cache.url}/v2/dist/team/app/manifests/1.0`, { headers: { accept } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
    await manifest.arrayBuffer();
    for (const blob of [image.config, ...image.layers]) {
      const response = await fetch(`${cache.url}/v2/dist/team/app/blobs/${blob.digest}`);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
    }
    // A second repository in Distribution gets its blobs by cross-repository mount.
    const mounted = await copy(`docker://${distribution.host}/team/app:1.0`, `docker://${distribution.host}/team/copy:1.0`, { tempDir: temp.path });
    assert.equal(mounted.code, 0, mounted.reporter.failure());
    assert.equal(mounted.reporter.of('blob-copied').filter((event) => event.mounted).length, 3);
  });
});

describe('token authentication against Distribution', { skip: missingCommands('docker-registry', 'openssl') }, () => {
  let tokens: TokenService;
  let distribution: Distribution;
  let seed: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    temp = await tempDir('berth-token-test');
    tokens = await startTokenService('tester', 's3cret');
    distribution = await startDistribution(tokens.auth);
    seed = await startTestRegistry();
  });
  after(async () => {
    await seed?.close();
    await distribution?.close();
    await tokens?.close();
    await temp?.remove();
  });

  test('berth copy answers Bearer challenges with the given credentials, and reuses tokens per scope', async () => {
    const image = await realImage({ layers: 3 });
    await pushImage(seed.url, 'src/secure', 'v1', image);
    const denied = await copy(`docker://${seed.host}/src/secure:v1`, `docker://${distribution.host}/private/app:v1`, { tempDir: temp.path });
    assert.equal(denied.code, 5, 'no credentials: exit code 5 (authentication)');
    assert.match(denied.reporter.failure(), /token service http:\/\/127\.0\.0\.1:\d+\/token refused anonymous access/);

    tokens.requests.length = 0;
    const pushed = await copy(`docker://${seed.host}/src/secure:v1`, `docker://${distribution.host}/private/app:v1`, {
      tempDir: temp.path,
      destination: { credentials: { username: 'tester', password: 's3cret' } },
    });
    assert.equal(pushed.code, 0, pushed.reporter.failure());
    assert.ok(tokens.requests.length >= 1 && tokens.requests.length <= 2, `tokens are cached per scope (${tokens.requests.length} requests)`);
    assert.ok(tokens.requests.every((request) => request.user === 'tester'));
    assert.ok(tokens.requests.some((request) => request.scopes.includes('repository:private/app:pull,push')));

    const back = await copy(`docker://${distribution.host}/private/app:v1`, `oci:${temp.path}/layout:v1`, {
      tempDir: temp.path,
      source: { credentials: { username: 'tester', password: 's3cret' } },
    });
    assert.equal(back.code, 0, back.reporter.failure());
    assert.equal(back.reporter.of('image-copied')[0]?.digest, image.manifest.digest);
  });

  test('a cache with credentials pulls through a token-protected upstream; without them the client gets a clear 404', async () => {
    const image = await realImage();
    await pushImage(seed.url, 'src/cached', 'v2', image);
    const pushed = await copy(`docker://${seed.host}/src/cached:v2`, `docker://${distribution.host}/private/cached:v2`, {
      tempDir: temp.path,
      destination: { credentials: { username: 'tester', password: 's3cret' } },
    });
    assert.equal(pushed.code, 0, pushed.reporter.failure());
    const cache = await startTestRegistry({
      repositories: [
        { prefix: 'auth/', kind: 'proxy', upstream: distribution.url, username: 'tester', password: 's3cret' },
        { prefix: 'anon/', kind: 'proxy', upstream: distribution.url },
      ],
    });
    try {
      tokens.requests.length = 0;
      const manifest = await fetch(`${cache.url}/v2/auth/private/cached/manifests/v2`, { headers: { accept } });
      assert.equal(manifest.status, 200);
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
      await manifest.arrayBuffer();
      for (const blob of [image.config, ...image.layers]) {
        const response = await fetch(`${cache.url}/v2/auth/private/cached/blobs/${blob.digest}`);
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
      }
      assert.equal(tokens.requests.length, 1, 'one token serves every request for the repository');

      const anonymous = await fetch(`${cache.url}/v2/anon/private/cached/manifests/v2`, { headers: { accept } });
      assert.equal(anonymous.status, 404);
      const body = (await anonymous.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, 'NAME_UNKNOWN');
      assert.match(body.errors[0]?.message ?? '', /refused access .* needs credentials this cache is not configured with/);
    } finally {
      await cache.close();
    }
  });
});
