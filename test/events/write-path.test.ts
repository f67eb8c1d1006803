import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { call } from '../helpers/http.ts';
import { pushBlob, pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { type PostgresDatabase, postgresMetadataSettings, postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry, type TestSettings } from '../helpers/registry.ts';
import { WebhookReceiver } from './receiver.ts';

/**
 * Events come from the write and read paths of the repositories, not from
 * HTTP traffic: a change's event is in the queue the moment the client has
 * its answer, even with the webhook down; a change that failed has none; a
 * change whose event cannot be written does not happen. On both drivers.
 */
const drivers: { name: string; skip: string | false; settings: () => Promise<TestSettings>; refuseEvents: (registry: TestRegistry) => Promise<void> }[] = [];
let cluster: TestPostgres | undefined;
let database: PostgresDatabase | undefined;

// The trigger is installed from a connection of the test's own, as another client of the database would.
drivers.push({
  name: 'SQLite',
  skip: false,
  settings: async () => ({}),
  refuseEvents: async (registry) => {
    const connection = new DatabaseSync(join(registry.dataDir, 'berth.db'));
    try {
      connection.exec(`CREATE TRIGGER refuse_events BEFORE INSERT ON event_queue BEGIN SELECT RAISE(ABORT, 'event queue refused'); END`);
    } finally {
      connection.close();
    }
  },
});
drivers.push({
  name: 'PostgreSQL',
  skip: postgresMissing(),
  settings: async () => {
    cluster ??= await startTestPostgres();
    database = await cluster.createDatabase();
    return postgresMetadataSettings(database);
  },
  refuseEvents: async () => {
    const client = new pg.Client(database);
    await client.connect();
    try {
      await client.query(`CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'event queue refused'; END $$`);
      await client.query('CREATE TRIGGER refuse_events BEFORE INSERT ON event_queue FOR EACH ROW EXECUTE FUNCTION refuse_events()');
    } finally {
      await client.end();
    }
  },
});
after(() => cluster?.close());

for (const driver of drivers) {
  describe(`events from the write and read paths: ${driver.name}`, { skip: driver.skip }, () => {
    const receiver = new WebhookReceiver();
    let registry: TestRegistry;
    before(async () => {
      // The webhook answers 503 throughout: nothing is ever delivered, so the queue shows everything recorded.
      await receiver.start();
      receiver.status = 503;
      registry = await startTestRegistry({
        ...(await driver.settings()),
        'gc.interval': 0,
        'gc.gracePeriod': 0,
        'gc.untaggedManifests': true,
        immutableTags: [{ repositories: ['fixed/**'], tags: ['v*'] }],
        retention: {
          policies: [
            { repositories: ['kept/**'], keepPulledWithin: '1d' },
            { repositories: ['pruned/**'], keepLatest: 1 },
          ],
        },
        events: { retry: { initialDelay: '1h', maxDelay: '1h' }, webhooks: [{ name: 'audit', url: receiver.url }] },
      });
    });
    after(async () => {
      await registry?.close();
      await receiver.stop();
    });

    /** Events in the queue, as [type, subject]. */
    const queued = async (): Promise<[string, string | undefined][]> =>
      (await registry.server.registry.operations.store.events.head('audit', 1000)).map((row) => {
        const event = JSON.parse(row.body) as { type: string; subject?: string };
        return [event.type, event.subject];
      });
    const since = async (before: number) => (await queued()).slice(before);

    it('has an acknowledged change’s event queued by the time the client has its answer, with the webhook down', async () => {
      const image = randomImage();
      const start = (await queued()).length;
      await pushImage(registry.url, 'team/app', 'v1', image);
      assert.deepEqual(await since(start), [['io.berth.manifest.pushed', 'team/app:v1']], 'no wait: the event was committed with the manifest');
      const [pushed] = await registry.server.registry.operations.store.events.head('audit', 1000).then((rows) => rows.slice(start));
      assert.deepEqual((JSON.parse(pushed?.body ?? '{}') as { data: unknown }).data, {
        repository: 'team/app',
        digest: image.manifest.digest,
        mediaType: image.manifest.mediaType,
        size: image.manifest.bytes.length,
        tags: ['v1'],
      });

      const deletes = (await queued()).length;
      assert.equal((await call(registry.url, 'DELETE', '/v2/team/app/manifests/v1')).status, 202);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/manifests/${image.manifest.digest}`)).status, 202);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/blobs/${image.config.digest}`)).status, 202);
      assert.deepEqual(await since(deletes), [
        ['io.berth.tag.deleted', 'team/app:v1'],
        ['io.berth.manifest.deleted', `team/app@${image.manifest.digest}`],
        ['io.berth.blob.deleted', `team/app@${image.config.digest}`],
      ]);
      assert.equal((await call(registry.url, 'GET', '/metrics')).text.includes('berth_events_total{webhook="audit",outcome="queued"} 4'), true);
    });

    it('records no event for a change that failed', async () => {
      const image = randomImage();
      await pushImage(registry.url, 'fixed/app', 'v1', image);
      const start = (await queued()).length;
      const other = randomImage();
      for (const blob of [other.config, ...other.layers]) await pushBlob(registry.url, 'fixed/app', blob);
      const moved = await fetch(`${registry.url}/v2/fixed/app/manifests/v1`, { method: 'PUT', headers: { 'content-type': other.manifest.mediaType }, body: other.manifest.bytes });
      assert.equal(moved.status, 403, 'an immutable tag does not move (refused inside the write)');
      const missing = randomImage();
      const unknownBlobs = await fetch(`${registry.url}/v2/team/missing/manifests/v1`, {
        method: 'PUT',
        headers: { 'content-type': missing.manifest.mediaType },
        body: missing.manifest.bytes,
      });
      assert.equal(unknownBlobs.status, 400, 'a manifest naming blobs that are not there is refused (MANIFEST_BLOB_UNKNOWN)');
      assert.equal((await call(registry.url, 'DELETE', '/v2/team/app/manifests/never')).status, 404);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/blobs/${missing.config.digest}`)).status, 404);
      assert.deepEqual(await since(start), []);
    });

    it('records pulls where manifests are read: GET is a pull, HEAD is not', async () => {
      const image = randomImage();
      await pushImage(registry.url, 'kept/app', 'v1', image);
      const { operations } = registry.server.registry;
      const start = (await queued()).length;
      const accept = { accept: image.manifest.mediaType };
      assert.equal((await call(registry.url, 'HEAD', '/v2/kept/app/manifests/v1', { headers: accept })).status, 200);
      await operations.events?.flush();
      await operations.pulls?.flush();
      assert.deepEqual(await since(start), [], 'a HEAD is no pull');
      assert.equal((await operations.store.pulls.lastPulls('kept/app' as never)).size, 0);

      assert.equal((await call(registry.url, 'GET', '/v2/kept/app/manifests/v1', { headers: accept })).status, 200);
      assert.equal((await call(registry.url, 'GET', `/v2/kept/app/manifests/${image.manifest.digest}`)).status, 200);
      await operations.events?.flush();
      await operations.pulls?.flush();
      assert.deepEqual(await since(start), [
        ['io.berth.manifest.pulled', 'kept/app:v1'],
        ['io.berth.manifest.pulled', `kept/app@${image.manifest.digest}`],
      ]);
      assert.deepEqual([...(await operations.store.pulls.lastPulls('kept/app' as never)).keys()], [image.manifest.digest], 'the pull time retention keeps');
    });

    it('has retention’s and collection’s deletions’ events queued when they return', async () => {
      const [older, newer] = [randomImage(), randomImage()];
      await pushImage(registry.url, 'pruned/app', 'old', older);
      await new Promise((resolve) => setTimeout(resolve, 5));
      await pushImage(registry.url, 'pruned/app', 'new', newer);
      const { operations } = registry.server.registry;
      const start = (await queued()).length;
      await operations.applyRetention({ dryRun: false });
      assert.deepEqual(await since(start), [
        ['io.berth.tag.deleted', 'pruned/app:old'],
        ['io.berth.manifest.deleted', `pruned/app@${older.manifest.digest}`],
      ]);
      const [tag, manifest] = (await operations.store.events.head('audit', 1000)).slice(start).map((row) => (JSON.parse(row.body) as { data: unknown }).data);
      assert.deepEqual(tag, { repository: 'pruned/app', tag: 'old', digest: older.manifest.digest, reason: 'retention' });
      assert.deepEqual(manifest, { repository: 'pruned/app', digest: older.manifest.digest, reason: 'retention' });

      const untagged = randomImage();
      await pushImage(registry.url, 'loose/app', untagged.manifest.digest, untagged);
      await new Promise((resolve) => setTimeout(resolve, 5));
      const collected = (await queued()).length;
      await operations.collect();
      const gc = (await since(collected)).filter(([, subject]) => subject?.startsWith('loose/'));
      assert.deepEqual(gc, [['io.berth.manifest.deleted', `loose/app@${untagged.manifest.digest}`]], 'the untagged manifest, collected');
    });

    it('makes no change whose event cannot be written: the client gets an error, not a silent loss', async () => {
      await driver.refuseEvents(registry);
      const image = randomImage();
      for (const blob of [image.config, ...image.layers]) await pushBlob(registry.url, 'team/lost', blob);
      await assert.rejects(pushManifest(registry.url, 'team/lost', 'v1', image.manifest), /manifest push failed: 500/);
      assert.equal((await call(registry.url, 'GET', '/v2/team/lost/manifests/v1', { headers: { accept: image.manifest.mediaType } })).status, 404);
    });
  });
}
