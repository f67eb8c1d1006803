import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventsConfig } from '../../src/config/operations.ts';
import { ChangeEvents } from '../../src/events/change-events.ts';
import { WebhookDispatcher } from '../../src/events/dispatcher.ts';
import { EventRecorder } from '../../src/events/recorder.ts';
import { silentLogger } from '../../src/log.ts';
import type { EventQueue } from '../../src/meta/operations-store.ts';
import type { Digest } from '../../src/oci/digest.ts';
import type { RepositoryName } from '../../src/oci/names.ts';
import { eventually } from '../helpers/eventually.ts';
import { WebhookReceiver } from './receiver.ts';
import { openQueue, pulled } from './sqlite-queue.ts';

type Queue = Awaited<ReturnType<typeof openQueue>>;

/**
 * A recorder and a dispatcher of one webhook (batches of 100) on a real
 * SQLite queue, as one process runs them, with the queue watched: how many
 * rows were written to it, and when the sender next finds it empty.
 */
function sender(queue: Queue, receiver: WebhookReceiver) {
  const config = eventsConfig.parse({ retry: { initialDelay: '300ms', maxDelay: '1s' }, webhooks: [{ name: 'hook', url: receiver.url, batchSize: 100 }] });
  const counted = new Map<string, number>();
  const count = (_webhook: string, outcome: string, events: number) => counted.set(outcome, (counted.get(outcome) ?? 0) + events);
  const events = queue.operations.events;
  let emptyWaiters: (() => void)[] = [];
  const watched = {
    written: 0,
    enqueue: async (rows) => {
      watched.written += rows.length;
      await events.enqueue(rows);
    },
    head: async (webhook, limit) => {
      const rows = await events.head(webhook, limit);
      if (rows.length === 0) {
        for (const waiter of emptyWaiters) setImmediate(waiter);
        emptyWaiters = [];
      }
      return rows;
    },
    remove: (ids) => events.remove(ids),
    postpone: (ids, at, error) => events.postpone(ids, at, error),
    backlog: () => events.backlog(),
  } satisfies EventQueue & { written: number };
  const seesEmptyQueue = () => new Promise<void>((resolve) => emptyWaiters.push(resolve));
  const recorder = new EventRecorder(config, watched, silentLogger, count);
  const dispatcher = new WebhookDispatcher(config, watched, queue.operations.leases, silentLogger, count, recorder);
  recorder.onQueued(() => dispatcher.wake());
  return {
    recorder,
    dispatcher,
    counted,
    watched,
    /** Resolves a turn after the sender next finds the queue empty (it has taken note by then). */
    seesEmptyQueue,
    /** Starts the sender; resolves once it has found the queue empty. */
    async start(): Promise<void> {
      const looked = seesEmptyQueue();
      dispatcher.start();
      await looked;
    },
    pulls(from: number, to: number): void {
      for (let n = from; n <= to; n++) recorder.recordSoon('io.berth.manifest.pulled', 'team/app', () => pulled(n));
    },
  };
}

const sizes = (receiver: WebhookReceiver) => receiver.events().map((event) => (event['data'] as { size: number }).size);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);

async function withSender(test: (queue: Queue, receiver: WebhookReceiver) => Promise<void>): Promise<void> {
  const queue = await openQueue();
  const receiver = new WebhookReceiver();
  await receiver.start();
  try {
    await test(queue, receiver);
  } finally {
    await receiver.stop();
    await queue.close();
  }
}

describe('pull events handed to the sender in memory', () => {
  it('are sent without being written to the queue while it is empty, in order, counted per event', () =>
    withSender(async (queue, receiver) => {
      const process = sender(queue, receiver);
      await process.start();
      try {
        process.pulls(1, 250);
        await process.recorder.flush();
        await receiver.waitFor(250);
        assert.deepEqual(sizes(receiver), range(1, 250));
        assert.deepEqual(
          receiver.received.map((request) => (request.body as unknown[]).length),
          [100, 100, 50],
        );
        assert.equal(process.watched.written, 0, 'nothing was written to the queue');
        await eventually(() => process.counted.get('delivered') === 250, { what: '250 counted as delivered' });
        assert.equal(process.counted.get('queued'), 250);
      } finally {
        await process.dispatcher.stop();
      }
    }));

  it('go into the queue when sending fails, as a first failed attempt with the rest behind it, and are sent from there in order', () =>
    withSender(async (queue, receiver) => {
      const process = sender(queue, receiver);
      await process.start();
      try {
        receiver.status = 503;
        process.pulls(1, 250);
        await process.recorder.flush();
        await eventually(async () => (await queue.operations.events.backlog()).get('hook') === 250, { what: 'all 250 in the queue' });
        const rows = await queue.operations.events.head('hook', 10);
        assert.deepEqual(
          rows.map((row) => row.attempts),
          [1, 0, 0],
          'the batch that failed counts its attempt',
        );
        const first = rows[0];
        assert.ok(first !== undefined && first.nextAttemptAt.getTime() - first.enqueuedAt.getTime() >= 250, 'retried after the initial delay (300 ms)');
        assert.equal(process.counted.get('retried'), 100);
        // Pulls while the queue holds events go into it behind them.
        process.pulls(251, 300);
        await process.recorder.flush();
        assert.equal((await queue.operations.events.backlog()).get('hook'), 300);

        const drained = process.seesEmptyQueue();
        receiver.status = 204;
        await receiver.waitFor(300);
        assert.deepEqual(sizes(receiver), range(1, 300));
        // Once the queue is empty again, pulls are handed over again.
        await drained;
        const written = process.watched.written;
        process.pulls(301, 310);
        await process.recorder.flush();
        await receiver.waitFor(310);
        assert.deepEqual(sizes(receiver), range(1, 310));
        assert.equal(process.watched.written, written, 'the last pulls were not written');
        assert.equal(process.counted.get('queued'), 310, 'each counted once as queued, however it went');
      } finally {
        await process.dispatcher.stop();
      }
    }));

  it('keep their place before a change recorded after them, and pulls after the change come after it', () =>
    withSender(async (queue, receiver) => {
      const process = sender(queue, receiver);
      const changes = new ChangeEvents(process.recorder);
      await process.start();
      try {
        // A slow webhook: the handed-over batches are still being sent when the change is committed.
        receiver.delayMs = 100;
        process.pulls(1, 250);
        await process.recorder.flush();
        const rows = await changes.rows({
          kind: 'manifest-pushed',
          repository: 'team/app' as RepositoryName,
          digest: `sha256:${'a'.repeat(64)}` as Digest,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          size: 1000,
          tags: [],
        });
        await process.watched.enqueue(rows);
        changes.committed(rows);
        process.pulls(251, 260);
        await process.recorder.flush();
        await receiver.waitFor(261);
        const types = receiver.events().map((event) => (event['type'] === 'io.berth.manifest.pushed' ? 'push' : (event['data'] as { size: number }).size));
        assert.deepEqual(types, [...range(1, 250), 'push', ...range(251, 260)]);
        assert.equal(process.watched.written, 2, 'the change, and the pulls behind it, were written');
      } finally {
        await process.dispatcher.stop();
      }
    }));

  it('are written to the queue when the sender stops before sending them, and sent from there by the next one', () =>
    withSender(async (queue, receiver) => {
      const first = sender(queue, receiver);
      await first.start();
      receiver.delayMs = 500;
      first.pulls(1, 250);
      await first.recorder.flush();
      await eventually(() => receiver.received.length === 1, { what: 'the first batch on its way' });
      assert.deepEqual(Object.fromEntries(first.recorder.handedBacklog()), { hook: 150 }, 'the two batches behind it wait in memory, counted in the backlog');
      await first.dispatcher.stop();
      assert.deepEqual(Object.fromEntries(first.recorder.handedBacklog()), {});
      const rows = await queue.operations.events.head('hook', 10);
      assert.deepEqual(
        rows.map((row) => row.attempts),
        [0, 0, 0],
        'the batch being sent and the two behind it, none counted as failed',
      );
      assert.equal((await queue.operations.events.backlog()).get('hook'), 250);

      receiver.delayMs = 0;
      const before = receiver.events().length;
      const next = sender(queue, receiver);
      next.dispatcher.start();
      try {
        await receiver.waitFor(before + 250);
        assert.deepEqual(sizes(receiver).slice(before), range(1, 250), 'all of them, in order (the interrupted batch again: at least once)');
      } finally {
        await next.dispatcher.stop();
      }
    }));
});
