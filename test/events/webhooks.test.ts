import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { eventually } from '../helpers/eventually.ts';
import { tempDir } from '../helpers/tmp.ts';
import { WebhookReceiver } from './receiver.ts';

const retry = { initialDelay: '50ms', maxDelay: '200ms' };
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

async function metric(registry: TestRegistry, line: RegExp): Promise<number | undefined> {
  const text = (await call(registry.url, 'GET', '/metrics')).text;
  const found = text.split('\n').find((each) => line.test(each));
  return found === undefined ? undefined : Number(found.split(' ').pop());
}

describe('CloudEvents webhooks', () => {
  it('sends push, pull, delete and GC events in structured mode, in order, filtered per webhook', async () => {
    const [audit, pushes] = [new WebhookReceiver(), new WebhookReceiver()];
    await audit.start();
    await pushes.start();
    const registry = await startTestRegistry({
      'gc.interval': 0,
      'gc.gracePeriod': 0,
      events: {
        source: 'https://registry.example.com',
        retry,
        webhooks: [
          { name: 'audit', url: audit.url, headers: { authorization: 'Bearer s3cret' } },
          { name: 'pushes', url: pushes.url, types: ['push'], repositories: ['team/**'] },
        ],
      },
    });
    try {
      const image = randomImage();
      await pushImage(registry.url, 'team/app', 'v1', image);
      const accept = { accept: image.manifest.mediaType };
      assert.equal((await call(registry.url, 'GET', '/v2/team/app/manifests/v1', { headers: accept })).status, 200);
      assert.equal((await call(registry.url, 'HEAD', '/v2/team/app/manifests/v1', { headers: accept })).status, 200);
      assert.equal((await call(registry.url, 'DELETE', '/v2/team/app/manifests/v1')).status, 202);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/manifests/${image.manifest.digest}`)).status, 202);
      assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/blobs/${image.config.digest}`)).status, 202);
      await pushImage(registry.url, 'other/app', 'v1', randomImage());
      await sleep(5);
      await registry.server.registry.operations.collect();
      await audit.waitFor(7);
      await pushes.waitFor(1);

      const events = audit.events();
      assert.deepEqual(
        events.map((event) => [event['type'], event['subject']]),
        [
          ['io.berth.manifest.pushed', 'team/app:v1'],
          ['io.berth.manifest.pulled', 'team/app:v1'],
          ['io.berth.tag.deleted', 'team/app:v1'],
          ['io.berth.manifest.deleted', `team/app@${image.manifest.digest}`],
          ['io.berth.blob.deleted', `team/app@${image.config.digest}`],
          ['io.berth.manifest.pushed', 'other/app:v1'],
          ['io.berth.gc.completed', undefined],
        ],
      );
      assert.ok(audit.received.every((item) => item.contentType === 'application/cloudevents+json; charset=utf-8' && item.authorization === 'Bearer s3cret'));
      const pushed = events[0] as Record<string, unknown>;
      assert.match(pushed['id'] as string, uuid);
      assert.ok(Math.abs(Date.parse(pushed['time'] as string) - Date.now()) < 60_000);
      assert.deepEqual(
        { ...pushed, id: undefined, time: undefined },
        {
          specversion: '1.0',
          id: undefined,
          source: 'https://registry.example.com',
          type: 'io.berth.manifest.pushed',
          subject: 'team/app:v1',
          time: undefined,
          datacontenttype: 'application/json',
          data: { repository: 'team/app', digest: image.manifest.digest, mediaType: image.manifest.mediaType, size: image.manifest.bytes.length, tags: ['v1'] },
        },
      );
      assert.deepEqual(events[1]?.['data'], {
        repository: 'team/app',
        digest: image.manifest.digest,
        mediaType: image.manifest.mediaType,
        size: image.manifest.bytes.length,
        reference: 'v1',
      });
      assert.deepEqual(events[2]?.['data'], { repository: 'team/app', tag: 'v1', reason: 'api' });
      const gc = events[6]?.['data'] as Record<string, unknown>;
      assert.equal(gc['dryRun'], false);
      assert.equal(gc['blobsDeleted'], 3, "the deleted image's two layers and its config (unlinked through the API); other/app keeps its own");
      assert.equal(new Set(events.map((event) => event['id'])).size, events.length, 'ids are unique');
      assert.deepEqual(
        pushes.events().map((event) => event['subject']),
        ['team/app:v1'],
        'only pushes under team/',
      );
      await eventually(async () => (await metric(registry, /^berth_events_total\{webhook="audit",outcome="delivered"\}/)) === 7, { what: 'delivered count' });
    } finally {
      await registry.close();
      await audit.stop();
      await pushes.stop();
    }
  });

  it('keeps events through a webhook outage and a restart, then delivers them in order', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    receiver.status = 503;
    const data = await tempDir('berth-events');
    const settings = { 'gc.interval': 0, events: { retry, webhooks: [{ name: 'audit', url: receiver.url }] } };
    try {
      const images = [randomImage(), randomImage(), randomImage()];
      const first = await startTestRegistry(settings, { dataDir: data.path });
      try {
        await pushImage(first.url, 'team/a', 'v1', images[0] as never);
        await pushImage(first.url, 'team/b', 'v1', images[1] as never);
        await eventually(async () => ((await metric(first, /^berth_events_total\{webhook="audit",outcome="retried"\}/)) ?? 0) >= 2, { what: 'failed attempts' });
        assert.equal(await metric(first, /^berth_events_backlog\{webhook="audit"\}/), 2);
        await receiver.stop();
      } finally {
        await first.close();
      }
      const second = await startTestRegistry(settings, { dataDir: data.path });
      try {
        await pushImage(second.url, 'team/c', 'v1', images[2] as never);
        receiver.status = 204;
        await receiver.start();
        await receiver.waitFor(3);
        assert.deepEqual(
          receiver.events().map((event) => (event['data'] as { digest: string }).digest),
          images.map((image) => image.manifest.digest),
        );
        await eventually(async () => (await metric(second, /^berth_events_backlog\{webhook="audit"\}/)) === undefined, { what: 'an empty backlog' });
      } finally {
        await second.close();
      }
    } finally {
      await receiver.stop();
      await data.remove();
    }
  });

  it('sends batches when asked, and drops an event the webhook refuses (4xx) without holding back the rest', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    receiver.status = 400;
    const registry = await startTestRegistry({ 'gc.interval': 0, events: { retry, webhooks: [{ name: 'batch', url: receiver.url, batchSize: 10, types: ['push'] }] } });
    try {
      await pushImage(registry.url, 'team/refused', 'v1', randomImage());
      await eventually(async () => (await metric(registry, /^berth_events_total\{webhook="batch",outcome="dropped"\}/)) === 1, { what: 'the refused event dropped' });
      receiver.status = 204;
      await pushImage(registry.url, 'team/taken', 'v1', randomImage());
      await receiver.waitFor(1);
      assert.equal(receiver.received[0]?.contentType, 'application/cloudevents-batch+json; charset=utf-8');
      assert.ok(Array.isArray(receiver.received[0]?.body));
      assert.deepEqual(
        receiver.events().map((event) => event['subject']),
        ['team/taken:v1'],
      );
    } finally {
      await registry.close();
      await receiver.stop();
    }
  });
});
