import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { blobOf, manifestOf, pushBlob, pushManifest, type TestBlob, type TestManifest } from '../helpers/images.ts';
import { postgresMetadataSettings, postgresMissing, postgresForSuite } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry, type TestSettings } from '../helpers/registry.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { assertConsistent, assertReadable, rows, storedDigests } from './state.ts';

/** Long enough that a push's layers and manifest always land within it, short enough to collect during the test. */
const grace = 2500;
const loadMilliseconds = 7000;
const workers = 4;

interface Pushed {
  repository: string;
  manifest: TestManifest;
  blobs: TestBlob[];
}

function image(shared: readonly TestBlob[]): { manifest: TestManifest; blobs: TestBlob[] } {
  const config = blobOf(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomBytes(8).toString('hex') })), mediaTypes.ociConfig);
  const picks = [...shared].sort(() => Math.random() - 0.5).slice(0, 2);
  const layers = [...picks, blobOf(randomBytes(512 + Math.floor(Math.random() * 2048)))];
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.bytes.length },
      layers: layers.map((layer) => ({ mediaType: layer.mediaType, digest: layer.digest, size: layer.bytes.length })),
    },
    mediaTypes.ociManifest,
  );
  return { manifest, blobs: [config, ...layers] };
}

/**
 * Pushes images sharing layers from several workers while passes run back
 * to back; workers also delete older images (their layers become garbage,
 * and shared ones are pushed again later) and leave pushes unfinished.
 */
async function runLoad(registry: TestRegistry): Promise<{ live: Pushed[]; failures: unknown[]; passes: number; deleted: number }> {
  const shared = Array.from({ length: 8 }, () => blobOf(randomBytes(1024)));
  const live: Pushed[] = [];
  const failures: unknown[] = [];
  const deadline = Date.now() + loadMilliseconds;
  const { operations } = registry.server.registry;
  let passes = 0;
  let deleted = 0;
  const collecting = (async () => {
    while (Date.now() < deadline) {
      const report = await operations.collect();
      if (report !== undefined) passes++;
      deleted += report?.blobsDeleted ?? 0;
      await sleep(20);
    }
  })();
  const worker = async (index: number) => {
    const repository = `load/w${index}`;
    const mine: Pushed[] = [];
    for (let n = 0; Date.now() < deadline; n++) {
      try {
        const { manifest, blobs } = image(shared);
        for (const blob of blobs) {
          const from = `load/w${(index + 1) % workers}`;
          const mounted =
            Math.random() < 0.3 && (await fetch(`${registry.url}/v2/${repository}/blobs/uploads/?mount=${blob.digest}&from=${from}`, { method: 'POST' })).status === 201;
          if (!mounted) await pushBlob(registry.url, repository, blob);
        }
        await pushManifest(registry.url, repository, `t${n}`, manifest);
        const pushed = { repository, manifest, blobs };
        mine.push(pushed);
        for (const blob of blobs) await assertReadable(registry.url, repository, blob.digest);
        if (mine.length > 3 && Math.random() < 0.5) {
          const old = mine.splice(Math.floor(Math.random() * (mine.length - 1)), 1)[0] as Pushed;
          const response = await fetch(`${registry.url}/v2/${repository}/manifests/${old.manifest.digest}`, { method: 'DELETE' });
          assert.equal(response.status, 202);
        }
        if (Math.random() < 0.2) await pushBlob(registry.url, repository, blobOf(randomBytes(700))); // never referenced
      } catch (error) {
        failures.push(error);
      }
    }
    live.push(...mine);
  };
  await Promise.all([collecting, ...Array.from({ length: workers }, (_, index) => worker(index))]);
  return { live, failures, passes, deleted };
}

async function checkGcUnderLoad(settings: TestSettings): Promise<void> {
  const registry = await startTestRegistry({ 'gc.interval': 0, 'gc.gracePeriod': grace, 'gc.untaggedManifests': true, 'gc.batchSize': 7, ...settings });
  try {
    const { live, failures, passes, deleted } = await runLoad(registry);
    assert.deepEqual(failures, [], 'no push failed');
    assert.ok(passes > 3, `passes ran during the load (${passes})`);
    assert.ok(deleted > 0, 'passes during the load deleted blobs');
    const { meta, blobs, operations } = registry.server.registry;
    await assertConsistent(meta, blobs);
    for (const pushed of live) {
      assert.equal((await fetch(`${registry.url}/v2/${pushed.repository}/manifests/${pushed.manifest.digest}`)).status, 200);
      for (const blob of pushed.blobs) await assertReadable(registry.url, pushed.repository, blob.digest);
    }
    // A pass whose clock is past the grace period of everything written under load.
    const report = await operations.collect({ clock: () => Date.now() + grace + 100 });
    assert.ok(report !== undefined);
    await assertConsistent(meta, blobs);
    const referenced = new Set(live.flatMap((pushed) => pushed.blobs.map((blob) => blob.digest as string)));
    assert.deepEqual([...(await storedDigests(blobs))].sort(), [...referenced].sort(), 'every unreferenced blob past the grace period is gone, nothing else');
    const blobRows = (await rows(meta, 'SELECT digest FROM blobs')).map((row) => row['digest'] as string);
    assert.deepEqual(blobRows.sort(), [...referenced].sort());
    for (const pushed of live) for (const blob of pushed.blobs) await assertReadable(registry.url, pushed.repository, blob.digest);
  } finally {
    await registry.close();
  }
}

describe('garbage collection under load', () => {
  it('SQLite: concurrent pushes of images sharing layers while passes run: no push fails, nothing referenced goes, garbage goes', async () => {
    await checkGcUnderLoad({});
  });

  describe('PostgreSQL', { skip: postgresMissing() }, () => {
    const cluster = postgresForSuite();

    it('concurrent pushes of images sharing layers while passes run: no push fails, nothing referenced goes, garbage goes', async () => {
      await checkGcUnderLoad(postgresMetadataSettings(await cluster.createDatabase()));
    });
  });
});
