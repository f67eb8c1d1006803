import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { authSettings } from '../helpers/auth.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { realImage } from '../copy/fixtures.ts';
import { copy } from '../copy/transfer.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

/** A Berth that requires sign-in, answering with a Basic or a Bearer (its own token endpoint) challenge. */
for (const challenge of ['basic', 'token'] as const) {
  describe(`Berth with access control (${challenge} challenge) as a copy destination and cache upstream`, () => {
    let temp: { path: string; remove(): Promise<void> };
    let seed: TestRegistry;
    let protectedRegistry: TestRegistry;
    let cache: TestRegistry;

    before(async () => {
      temp = await tempDir('berth-auth-upstream');
      seed = await startTestRegistry();
      protectedRegistry = await startTestRegistry(await authSettings(temp.path, { users: { alice: 'wonderland' }, extra: { 'auth.challenge': challenge } }));
      cache = await startTestRegistry({
        repositories: [{ prefix: 'up/', kind: 'proxy', upstream: protectedRegistry.url, username: 'alice', password: 'wonderland' }],
      });
    });
    after(async () => {
      await cache?.close();
      await protectedRegistry?.close();
      await seed?.close();
      await temp?.remove();
    });

    test('copy needs the credentials; the cache pulls with its own', async () => {
      const image = await realImage();
      await pushImage(seed.url, 'src/app', '1', image);
      const anonymous = await copy(`docker://${seed.host}/src/app:1`, `docker://${protectedRegistry.host}/team/app:1`, { tempDir: temp.path });
      assert.equal(anonymous.code, 5, anonymous.reporter.failure());
      const signedIn = await copy(`docker://${seed.host}/src/app:1`, `docker://${protectedRegistry.host}/team/app:1`, {
        tempDir: temp.path,
        destination: { credentials: { username: 'alice', password: 'wonderland' } },
      });
      assert.equal(signedIn.code, 0, signedIn.reporter.failure());

      const manifest = await fetch(`${cache.url}/v2/up/team/app/manifests/1`, { headers: { accept } });
      assert.equal(manifest.status, 200);
      assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
      await manifest.arrayBuffer();
      for (const blob of [image.config, ...image.layers]) {
        const response = await fetch(`${cache.url}/v2/up/team/app/blobs/${blob.digest}`);
        assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob.bytes));
      }
    });
  });
}
