import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { blobOf, pushBlob, pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { eventually } from '../helpers/eventually.ts';
import { postgresMetadataEnvironment, postgresMetadataSettings, postgresMissing, postgresForSuite } from '../helpers/postgres.ts';
import { spawnBerth } from '../helpers/process.ts';
import { startTestRegistry, type TestSettings } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { assertConsistent, assertReadable, storedDigests } from './state.ts';

const garbageBlobs = 240;

/**
 * Kills a `berth gc` child (SIGKILL) as soon as it reports its first
 * condemned batch, while a registry keeps serving the same stores; then
 * checks that the stores are consistent, that pushes still work, and that
 * the next pass finishes the job.
 */
async function checkKilledPass(settings: TestSettings, childEnvironment: NodeJS.ProcessEnv): Promise<void> {
  const dir = await tempDir('berth-gc-crash');
  const registry = await startTestRegistry({ 'gc.interval': 0, 'gc.gracePeriod': 0, ...settings }, { dataDir: dir.path });
  try {
    const kept: TestImage[] = [randomImage(), randomImage()];
    for (const [index, image] of kept.entries()) await pushImage(registry.url, 'crash/kept', `v${index}`, image);
    const garbage = Array.from({ length: garbageBlobs }, () => blobOf(randomBytes(64)));
    for (let index = 0; index < garbage.length; index += 16) {
      await Promise.all(garbage.slice(index, index + 16).map((blob) => pushBlob(registry.url, 'crash/loose', blob)));
    }
    await sleep(1100);

    const child = spawnBerth(['gc', '--verbose', '--data', dir.path], {
      BERTH_LOG_FORMAT: 'json',
      BERTH_GC_GRACE_PERIOD: '0',
      BERTH_GC_BATCH_SIZE: '4',
      ...childEnvironment,
    });
    try {
      // Some batches in: blobs deleted, the current batch likely condemned with its bytes still there.
      // berth gc logs to stderr (stdout is for its report).
      const condemnedBatches = () =>
        child
          .stderr()
          .split('\n')
          .filter((line) => line.includes('condemned blobs')).length;
      await eventually(() => condemnedBatches() >= 5 || child.child.exitCode !== null, { interval: 1, timeout: 60_000, what: 'five condemned batches logged' });
      child.child.kill('SIGKILL');
      assert.equal(await child.exited, null, 'killed, not finished');
    } finally {
      await child.stop();
    }

    const { meta, blobs, operations } = registry.server.registry;
    const halfDone = (await operations.store.blobs.tombstones(1000)).length;
    await assertConsistent(meta, blobs);
    const left = await storedDigests(blobs);
    const deletedSoFar = garbage.filter((blob) => !left.has(blob.digest)).length;
    assert.ok(deletedSoFar + halfDone > 0 && deletedSoFar < garbageBlobs, `the pass was cut short (${deletedSoFar} of ${garbageBlobs} deleted, ${halfDone} condemned)`);
    for (const image of kept) for (const blob of [image.config, ...image.layers]) await assertReadable(registry.url, 'crash/kept', blob.digest);

    // A push of garbage the dead pass may have condemned still succeeds.
    const again = garbage.slice(0, 8);
    for (const blob of again) await pushBlob(registry.url, 'crash/again', blob);
    for (const blob of again) await assertReadable(registry.url, 'crash/again', blob.digest);

    await sleep(5);
    const report = await operations.collect();
    assert.ok(report !== undefined, 'the dead pass does not hold the lease');
    await assertConsistent(meta, blobs);
    const expected = new Set([...kept.flatMap((image) => [image.config, ...image.layers]).map((blob) => blob.digest as string)]);
    const stored = await storedDigests(blobs);
    for (const digest of expected) assert.ok(stored.has(digest), `kept blob ${digest} is stored`);
    for (const blob of garbage.slice(8)) assert.ok(!stored.has(blob.digest), `garbage ${blob.digest} is gone`);
    assert.deepEqual(await operations.store.blobs.tombstones(10), [], 'no deletion is left half done');
  } finally {
    await registry.close();
    await dir.remove();
  }
}

describe('a garbage collection pass killed midway', () => {
  it('SQLite: leaves consistent stores; the next pass finishes', async () => {
    await checkKilledPass({}, {});
  });

  describe('PostgreSQL', { skip: postgresMissing() }, () => {
    const cluster = postgresForSuite();

    it('leaves consistent stores; the next pass finishes', async () => {
      const database = await cluster.createDatabase();
      await checkKilledPass(postgresMetadataSettings(database), postgresMetadataEnvironment(database));
    });
  });
});
