import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { freeBlockedPort } from '../helpers/blocked-port.ts';
import { startDistribution, type Distribution } from '../helpers/distribution.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { realImage } from './fixtures.ts';
import { imageFacts } from './inspect.ts';
import { copy } from './transfer.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

// The global fetch refuses these ports ("bad port"); skopeo and docker do not, and neither may Berth.
describe('registries on ports the Fetch standard blocks', () => {
  let seed: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;
  before(async () => {
    temp = await tempDir('berth-blocked-port');
    seed = await startTestRegistry();
    image = await realImage({ layers: 2, layerSize: 200 * 1024 });
    await pushImage(seed.url, 'src/app', '1', image);
  });
  after(async () => {
    await seed?.close();
    await temp?.remove();
  });

  test("fetch itself, Node's and undici's, refuses the port (what this suite guards against)", async () => {
    const port = (await freeBlockedPort()) ?? 10080;
    const badPort = (error: Error) => String((error.cause as Error | undefined)?.message).includes('bad port');
    await assert.rejects(fetch(`http://127.0.0.1:${port}/v2/`), badPort);
    await assert.rejects(undiciFetch(`http://127.0.0.1:${port}/v2/`), badPort);
  });

  test('berth copy to and from a Berth on a blocked port', async (t) => {
    const port = await freeBlockedPort();
    if (port === undefined) return t.skip('every blocked port is taken on this machine');
    const blocked = await startTestRegistry({ listen: `127.0.0.1:${port}` });
    try {
      const pushed = await copy(`docker://${seed.host}/src/app:1`, `docker://${blocked.host}/x/app:1`, { tempDir: temp.path, destination: { chunkSize: 64 * 1024 } });
      assert.equal(pushed.code, 0, pushed.reporter.failure());
      const pulled = await copy(`docker://${blocked.host}/x/app:1`, `oci:${temp.path}/berth:1`, { tempDir: temp.path });
      assert.equal(pulled.code, 0, pulled.reporter.failure());
      const facts = await imageFacts(`oci:${temp.path}/berth:1`, { authFiles: [], tempDir: temp.path });
      assert.equal(facts.manifestDigest, image.manifest.digest);
      assert.deepEqual(facts.diffIds, image.diffIds);
    } finally {
      await blocked.close();
    }
  });

  describe('CNCF Distribution on a blocked port', { skip: missingCommands('docker-registry') }, () => {
    let distribution: Distribution | undefined;
    let cache: TestRegistry | undefined;
    before(async () => {
      const port = await freeBlockedPort();
      if (port === undefined) return;
      distribution = await startDistribution(undefined, port);
      cache = await startTestRegistry({ repositories: [{ prefix: 'dist/', kind: 'proxy', upstream: distribution.url }] });
    });
    after(async () => {
      await cache?.close();
      await distribution?.close();
    });

    test('berth copy pushes to it and pulls from it', async (t) => {
      if (distribution === undefined) return t.skip('every blocked port is taken on this machine');
      const pushed = await copy(`docker://${seed.host}/src/app:1`, `docker://${distribution.host}/x/app:1`, { tempDir: temp.path, destination: { chunkSize: 64 * 1024 } });
      assert.equal(pushed.code, 0, pushed.reporter.failure());
      const pulled = await copy(`docker://${distribution.host}/x/app:1`, `oci:${temp.path}/distribution:1`, { tempDir: temp.path });
      assert.equal(pulled.code, 0, pulled.reporter.failure());
      const facts = await imageFacts(`oci:${temp.path}/distribution:1`, { authFiles: [], tempDir: temp.path });
      assert.equal(facts.manifestDigest, image.manifest.digest);
      assert.deepEqual(facts.diffIds, image.diffIds);
    });

    test('the pull-through proxy reaches it as its upstream', async (t) => {
      if (distribution === undefined || cache === undefined) return t.skip('every blocked port is taken on this machine');
      await pushImage(seed.url, 'src/proxied', '1', image);
      const pushed = await copy(`docker://${seed.host}/src/proxied:1`, `docker://${distribution.host}/team/proxied:1`, { tempDir: temp.path });
      assert.equal(pushed.code, 0, pushed.reporter.failure());
      const manifest = await fetch(`${cache.url}/v2/dist/team/proxied/manifests/1`, { headers: { accept } });
      assert.equal(manifest.status, 200, await manifest.clone().text());
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
      await manifest.arrayBuffer();
      for (const blob of [image.config, ...image.layers]) {
        const response = await fetch(`${cache.url}/v2/dist/team/proxied/blobs/${blob.digest}`);
        assert.equal(response.status, 200);
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.bytes);
      }
    });
  });
});
