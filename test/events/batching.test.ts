import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventsConfig } from '../../src/config/operations.ts';
import { cloudEvent, cloudEventJson } from '../../src/events/cloudevents.ts';
import { WebhookDispatcher } from '../../src/events/dispatcher.ts';
import { eventCount } from '../../src/events/outbox-bodies.ts';
import { EventRecorder } from '../../src/events/recorder.ts';
import { silentLogger } from '../../src/log.ts';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { startTestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { WebhookReceiver } from './receiver.ts';
import { numbers, openQueue, pulled } from './sqlite-queue.ts';

describe('pull events gathered in memory', () => {
  it('are written as one row per webhook batch, in order, counted per event; a webhook of single events gets a row each', async () => {
    const queue = await openQueue();
    const counted = new Map<string, number>();
    const config = eventsConfig.parse({
      webhooks: [
        { name: 'batched', url: 'http://127.0.0.1:9/', batchSize: 3 },
        { name: 'single', url: 'http://127.0.0.1:9/' },
        { name: 'pushes', url: 'http://127.0.0.1:9/', types: ['push'] },
      ],
    });
    const recorder = new EventRecorder(config, queue.operations.events, silentLogger, (webhook, outcome, events) =>
      counted.set(`${webhook} ${outcome}`, (counted.get(`${webhook} ${outcome}`) ?? 0) + events),
    );
    try {
      let built = 0;
      for (let n = 1; n <= 7; n++) {
        recorder.recordSoon('io.berth.manifest.pulled', 'team/app', () => {
          built++;
          return pulled(n);
        });
      }
      assert.equal(built, 0, 'built when written');
      assert.deepEqual(await queue.operations.events.head('batched', 100), [], 'nothing written before the moment is over');
      await recorder.flush();
      assert.equal(built, 7, 'built once per pull, whatever the number of webhooks taking it');
      const batched = (await queue.operations.events.head('batched', 100)).map((row) => row.body);
      assert.deepEqual(batched.map(eventCount), [3, 3, 1]);
      assert.deepEqual(numbers(batched), [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(JSON.parse(batched[0] as string).length, 3, 'a grouped row is a JSON array');
      const single = (await queue.operations.events.head('single', 100)).map((row) => row.body);
      assert.deepEqual(single.map(eventCount), [1, 1, 1, 1, 1, 1, 1]);
      assert.deepEqual(numbers(single), [1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(await queue.operations.events.head('pushes', 100), [], 'a webhook not taking pulls gets none');
      assert.deepEqual(Object.fromEntries(await queue.operations.events.backlog()), { batched: 7, single: 7 });
      assert.deepEqual(Object.fromEntries(counted), { 'batched queued': 7, 'single queued': 7 });

      recorder.recordSoon('io.berth.manifest.pulled', 'team/app', () => pulled(8));
      await recorder.record(cloudEvent('/berth', 'io.berth.gc.completed', undefined, { size: 9 }));
      assert.deepEqual(
        numbers((await queue.operations.events.head('single', 100)).map((row) => row.body)).slice(-2),
        [8, 9],
        'a pull gathered before a GC event is queued before it',
      );
    } finally {
      await queue.close();
    }
  });

  it('are written on the next turn once whole batches of about 256 wait, not 200 ms later', async () => {
    const queue = await openQueue();
    const config = eventsConfig.parse({ webhooks: [{ name: 'batched', url: 'http://127.0.0.1:9/', batchSize: 100 }] });
    const recorder = new EventRecorder(config, queue.operations.events, silentLogger);
    try {
      for (let n = 1; n <= 299; n++) recorder.recordSoon('io.berth.manifest.pulled', 'team/app', () => pulled(n));
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(await queue.operations.events.head('batched', 100), [], '299 wait for the timer');
      recorder.recordSoon('io.berth.manifest.pulled', 'team/app', () => pulled(300));
      // A few turns of the event loop, far less than the timer's 200 ms: the rows are written by then.
      for (let turn = 0; turn < 10 && (await queue.operations.events.head('batched', 100)).length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
      const rows = (await queue.operations.events.head('batched', 100)).map((row) => row.body);
      assert.deepEqual(rows.map(eventCount), [100, 100, 100], 'three whole batches');
      assert.deepEqual(
        numbers(rows),
        Array.from({ length: 300 }, (_, index) => index + 1),
      );
    } finally {
      await recorder.flush();
      await queue.close();
    }
  });

  it('serialise to what JSON.stringify writes for the same event', () => {
    const data = { repository: 'team/app', digest: 'sha256:00', mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 12, reference: 'v"1' };
    const time = Date.UTC(2026, 11, 7, 12, 0, 0, 123);
    const written = JSON.parse(cloudEventJson('https://r.example/x"y', 'io.berth.manifest.pulled', 'team/app:v1', data, time)) as Record<string, unknown>;
    const expected = JSON.parse(JSON.stringify(cloudEvent('https://r.example/x"y', 'io.berth.manifest.pulled', 'team/app:v1', data, new Date(time)))) as Record<string, unknown>;
    assert.deepEqual({ ...written, id: undefined }, { ...expected, id: undefined });
    assert.deepEqual(Object.keys(written), Object.keys(expected), 'same attribute order');
    assert.equal(JSON.parse(cloudEventJson('/berth', 'io.berth.gc.completed', undefined, {}, time)).subject, undefined);
  });
});

describe('delivery of grouped rows', () => {
  it('sends rows together up to the batch size, and splits a row written for a larger batch', async () => {
    const queue = await openQueue();
    const receiver = new WebhookReceiver();
    await receiver.start();
    const delivered: number[] = [];
    const events = queue.operations.events;
    // Rows as a recorder for a batch size of 3 wrote them, and a single push event between them.
    await events.enqueue([
      { webhook: 'hook', body: `[${[1, 2, 3].map(pulled).join(',\n')}]` },
      { webhook: 'hook', body: pulled(4) },
      { webhook: 'hook', body: `[${[5, 6].map(pulled).join(',\n')}]` },
    ]);
    const dispatcher = new WebhookDispatcher(
      eventsConfig.parse({ webhooks: [{ name: 'hook', url: receiver.url, batchSize: 2 }] }),
      events,
      queue.operations.leases,
      silentLogger,
      (_webhook, outcome, count) => {
        if (outcome === 'delivered') delivered.push(count);
      },
    );
    dispatcher.start();
    try {
      await receiver.waitFor(6);
      assert.deepEqual(
        receiver.received.map((request) => (request.body as unknown[]).length),
        [2, 1, 1, 2],
        'the first row (3 events) went out as 2 + 1, then the single event, then the pair',
      );
      assert.ok(receiver.received.every((request) => request.contentType === 'application/cloudevents-batch+json; charset=utf-8'));
      assert.deepEqual(
        receiver.events().map((event) => (event['data'] as { size: number }).size),
        [1, 2, 3, 4, 5, 6],
      );
      await eventually(async () => (await events.backlog()).get('hook') === undefined, { what: 'an empty backlog' });
      assert.deepEqual(delivered, [3, 1, 2], 'counted per event, a row once all of it was taken');
    } finally {
      await dispatcher.stop();
      await receiver.stop();
      await queue.close();
    }
  });
});

describe('pull events of a running registry', () => {
  it('are all delivered, in order, after a clean shutdown right after the pulls', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    receiver.status = 503;
    const data = await tempDir('berth-batching-registry');
    const settings = {
      'gc.interval': 0,
      events: { retry: { initialDelay: '50ms', maxDelay: '100ms' }, webhooks: [{ name: 'audit', url: receiver.url, batchSize: 10, types: ['pull'] }] },
    };
    try {
      const image = randomImage();
      const tags = Array.from({ length: 25 }, (_, n) => `t${n}`);
      const first = await startTestRegistry(settings, { dataDir: data.path });
      try {
        await pushImage(first.url, 'team/app', 't0', image);
        for (const tag of tags.slice(1)) await pushManifest(first.url, 'team/app', tag, image.manifest);
        for (const tag of tags) {
          const response = await call(first.url, 'GET', `/v2/team/app/manifests/${tag}`, { headers: { accept: image.manifest.mediaType } });
          assert.equal(response.status, 200);
        }
      } finally {
        // Right after the pulls: the last of them are still in memory, and the shutdown writes them.
        await first.close();
      }
      const second = await startTestRegistry(settings, { dataDir: data.path });
      try {
        receiver.status = 204;
        await receiver.waitFor(25);
        assert.equal(receiver.events().length, 25);
        assert.deepEqual(
          receiver.events().map((event) => event['subject']),
          tags.map((tag) => `team/app:${tag}`),
        );
        assert.equal(new Set(receiver.events().map((event) => event['id'])).size, 25);
        assert.ok(receiver.received.every((request) => (request.body as unknown[]).length <= 10));
      } finally {
        await second.close();
      }
    } finally {
      await receiver.stop();
      await data.remove();
    }
  });
});
