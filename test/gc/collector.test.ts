import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import type { GcReport } from '../../src/gc/collector.ts';
import { writeBlob } from '../../src/registry/blob-writer.ts';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { imageIndex, pushBlob, pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry, type TestSettings } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeOciArchive } from '../sources/archive/fixtures.ts';

const noSchedules = { 'gc.interval': 0 };

async function withRegistry(settings: TestSettings, work: (registry: TestRegistry) => Promise<void>): Promise<void> {
  const registry = await startTestRegistry({ ...noSchedules, ...settings });
  try {
    await work(registry);
  } finally {
    await registry.close();
  }
}

/**
 * A pass as if run two seconds from now: its cutoff ("start - grace") is past
 * every write so far, file times' coarse steps included, without waiting.
 * Only for passes with nothing in flight: a later start would not protect it.
 */
async function collect(registry: TestRegistry, options: { dryRun?: boolean } = {}): Promise<GcReport> {
  const report = await registry.server.registry.operations.collect({ ...options, clock: () => Date.now() + 2000 });
  assert.ok(report !== undefined, 'the pass ran');
  return report;
}

async function status(registry: TestRegistry, path: string): Promise<number> {
  return (await call(registry.url, 'GET', path)).status;
}

async function stored(registry: TestRegistry, digest: string): Promise<boolean> {
  return (await registry.server.registry.blobs.stat(digest as never)) !== undefined;
}

describe('garbage collection', () => {
  it('unlinks layers no manifest references and deletes blobs nothing links, keeping everything referenced', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const kept = randomImage();
      const dropped = randomImage();
      const shared = randomImage({ layers: 1 });
      await pushImage(registry.url, 'team/app', 'v1', kept);
      await pushImage(registry.url, 'team/app', 'v2', dropped);
      await pushImage(registry.url, 'team/other', 'v1', shared);
      await pushBlob(registry.url, 'team/other', dropped.layers[0] as never);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/manifests/${dropped.manifest.digest}`)).status, 202);
      const report = await collect(registry);
      assert.equal(report.manifestsDeleted, 0);
      // dropped's config and layers are unlinked from team/app; its first layer, linked loose into team/other, goes too.
      assert.equal(report.linksRemoved, 4);
      assert.equal(report.blobsDeleted, 3);
      assert.equal(report.bytesFreed, dropped.config.bytes.length + dropped.layers.reduce((total, layer) => total + layer.bytes.length, 0));
      for (const blob of [kept.config, ...kept.layers]) {
        assert.equal(await status(registry, `/v2/team/app/blobs/${blob.digest}`), 200);
        assert.ok(await stored(registry, blob.digest));
      }
      for (const blob of [dropped.config, ...dropped.layers]) assert.equal(await stored(registry, blob.digest), false);
      assert.equal(await status(registry, '/v2/team/other/manifests/v1'), 200);
      const again = await collect(registry);
      assert.deepEqual([again.linksRemoved, again.blobsDeleted, again.bytesFreed], [0, 0, 0], 'a second pass finds nothing');
    });
  });

  it('keeps what is younger than the grace period', async () => {
    await withRegistry({ 'gc.gracePeriod': '1h', 'gc.untaggedManifests': true }, async (registry) => {
      const image = randomImage();
      await pushImage(registry.url, 'young/app', 'v1', image);
      await call(registry.url, 'DELETE', '/v2/young/app/manifests/v1');
      const report = await collect(registry);
      assert.deepEqual([report.manifestsDeleted, report.linksRemoved, report.blobsDeleted, report.orphansDeleted], [0, 0, 0, 0]);
      assert.equal(await status(registry, `/v2/young/app/manifests/${image.manifest.digest}`), 200);
    });
  });

  describe('untagged manifests', () => {
    const cases = [
      { name: 'off by default: an untagged manifest and its layers stay', untagged: false, expectGone: false },
      { name: 'on: an untagged manifest goes, then its layers', untagged: true, expectGone: true },
    ];
    for (const { name, untagged, expectGone } of cases) {
      it(name, async () => {
        await withRegistry({ 'gc.gracePeriod': 0, 'gc.untaggedManifests': untagged }, async (registry) => {
          const image = randomImage();
          await pushImage(registry.url, 'lib/app', 'v1', image);
          await call(registry.url, 'DELETE', '/v2/lib/app/manifests/v1');
          const report = await collect(registry);
          assert.equal(report.manifestsDeleted, expectGone ? 1 : 0);
          assert.equal(await status(registry, `/v2/lib/app/manifests/${image.manifest.digest}`), expectGone ? 404 : 200);
          assert.equal(await stored(registry, image.layers[0]?.digest as string), !expectGone);
        });
      });
    }

    it('keeps children of a tagged index and referrers of a kept subject; frees a whole untagged index', async () => {
      await withRegistry({ 'gc.gracePeriod': 0, 'gc.untaggedManifests': true }, async (registry) => {
        const [amd, arm] = [randomImage(), randomImage()];
        for (const image of [amd, arm]) await pushImage(registry.url, 'multi/app', image.manifest.digest, image);
        const index = imageIndex([
          { image: amd, os: 'linux', architecture: 'amd64' },
          { image: arm, os: 'linux', architecture: 'arm64' },
        ]);
        await pushManifest(registry.url, 'multi/app', 'v1', index);
        const signature = randomImage({ layers: 1, subject: index, artifactType: 'application/vnd.example.sig' });
        await pushImage(registry.url, 'multi/app', signature.manifest.digest, signature);
        let report = await collect(registry);
        assert.equal(report.manifestsDeleted, 0, 'children and referrer are reachable');
        assert.equal(await status(registry, `/v2/multi/app/manifests/${arm.manifest.digest}`), 200);
        await call(registry.url, 'DELETE', '/v2/multi/app/manifests/v1');
        report = await collect(registry);
        assert.equal(report.manifestsDeleted, 4, 'the index, both children (next round), and the signature');
        for (const image of [amd, arm, signature]) assert.equal(await stored(registry, image.config.digest), false);
      });
    });
  });

  it('deletes bytes no metadata knows (a crash between write and link) once past the grace period', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const bytes = randomBytes(300);
      const { digest } = await writeBlob(registry.server.registry.blobs, Readable.from([bytes]));
      assert.ok(await stored(registry, digest));
      const report = await collect(registry);
      assert.equal(report.orphansDeleted, 1);
      assert.ok(report.bytesFreed >= 300);
      assert.equal(await stored(registry, digest), false);
    });
  });

  it('keeps blobs other kinds retain: a gzip archive extracted into the blob store', async () => {
    const dir = await tempDir('berth-gc-archive');
    try {
      await mkdir(join(dir.path, 'images'));
      const image = randomImage();
      await writeOciArchive(join(dir.path, 'images', 'app.tar.gz'), [{ image, tags: ['v1'] }], { gzip: true });
      const repositories = [{ prefix: 'local/', kind: 'archive', directory: join(dir.path, 'images'), watch: false, rescanInterval: 0 }];
      await withRegistry({ 'gc.gracePeriod': 0, repositories }, async (registry) => {
        assert.equal(await status(registry, '/v2/local/app/manifests/v1'), 200);
        const report = await collect(registry);
        assert.equal(report.orphansDeleted, 0);
        for (const blob of [image.config, ...image.layers]) assert.equal(await status(registry, `/v2/local/app/blobs/${blob.digest}`), 200);
      });
    } finally {
      await dir.remove();
    }
  });

  it('removes upload sessions untouched past their expiry, with their bytes', async () => {
    await withRegistry({ 'gc.gracePeriod': '1h', 'gc.uploadExpiry': '50ms' }, async (registry) => {
      const started = await call(registry.url, 'POST', '/v2/up/app/blobs/uploads/');
      const location = started.headers.get('location') as string;
      await call(registry.url, 'PATCH', location, { body: randomBytes(100), headers: { 'content-type': 'application/octet-stream' } });
      const report = await collect(registry);
      assert.equal(report.uploads.sessions, 1);
      assert.equal((await call(registry.url, 'GET', location)).status, 404);
    });
  });

  it('counts in a dry run without deleting anything', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const image = randomImage();
      await pushImage(registry.url, 'dry/app', 'v1', image);
      await call(registry.url, 'DELETE', `/v2/dry/app/manifests/${image.manifest.digest}`);
      const report = await collect(registry, { dryRun: true });
      assert.equal(report.dryRun, true);
      assert.equal(report.linksRemoved, 3);
      assert.equal(await status(registry, `/v2/dry/app/blobs/${image.config.digest}`), 200);
      assert.equal((await collect(registry)).blobsDeleted, 3);
    });
  });

  it('runs one pass at a time', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const { operations } = registry.server.registry;
      const lease = await operations.store.leases.acquire('gc');
      assert.ok(lease !== undefined);
      try {
        assert.equal(await operations.collect(), undefined);
      } finally {
        await lease.release();
      }
      assert.ok((await operations.collect()) !== undefined);
    });
  });

  it('a push of a blob the pass has just condemned waits for the deletion, then stores it again', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const image = randomImage({ layers: 1 });
      const layer = image.layers[0] as NonNullable<(typeof image.layers)[0]>;
      await pushImage(registry.url, 'race/app', 'v1', image);
      await call(registry.url, 'DELETE', `/v2/race/app/manifests/${image.manifest.digest}`);
      let push: Promise<void> | undefined;
      let pushed = false;
      await sleep(5);
      const report = await registry.server.registry.operations.collect({
        afterCondemn: async (condemned) => {
          if (!condemned.some((blob) => blob.digest === layer.digest)) return;
          push = pushBlob(registry.url, 'race/again', layer).then(() => {
            pushed = true;
          });
          await eventually(() => registry.server.registry.operations.guard.waiting === 1, { what: 'the push to wait for the collector' });
          assert.equal(pushed, false, 'the push waits while the blob is condemned');
        },
      });
      assert.ok(push !== undefined && report !== undefined);
      await push;
      assert.ok(await stored(registry, layer.digest), 'the bytes were written again after the deletion');
      assert.equal(await status(registry, `/v2/race/again/blobs/${layer.digest}`), 200);
    });
  });

  it('a pass that dies after condemning leaves rows gone and bytes for the next pass; a push of the same blob still succeeds', async () => {
    await withRegistry({ 'gc.gracePeriod': 0 }, async (registry) => {
      const { operations } = registry.server.registry;
      const image = randomImage({ layers: 1 });
      await pushImage(registry.url, 'crash/app', 'v1', image);
      await call(registry.url, 'DELETE', `/v2/crash/app/manifests/${image.manifest.digest}`);
      await sleep(5);
      await assert.rejects(
        operations.collect({
          afterCondemn: async () => {
            throw new Error('killed');
          },
        }),
        /killed/,
      );
      const tombstoned = (await operations.store.blobs.tombstones(100)).map((blob) => blob.digest);
      assert.ok(tombstoned.includes(image.layers[0]?.digest as never));
      assert.equal(await registry.server.registry.meta.blobs.storedSize(image.layers[0]?.digest as never), undefined, 'no row without a decision');
      // Nobody finishes the dead pass's deletion until a writer needs the digest: the push does, then writes the blob again.
      await pushImage(registry.url, 'crash/app', 'v2', image);
      assert.equal(await status(registry, `/v2/crash/app/blobs/${image.layers[0]?.digest}`), 200);
      const report = await collect(registry);
      assert.ok(await stored(registry, image.layers[0]?.digest as string), 'the pushed blob survives the next pass');
      assert.equal(report.blobsDeleted, 0);
    });
  });
});
