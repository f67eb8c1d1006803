import { setTimeout as sleep } from 'node:timers/promises';
import type { EventsConfig, WebhookConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import type { OutboxRow } from '../meta/meta-store.ts';
import type { EventQueue, Leases, QueuedEvent } from '../meta/operations-store.ts';
import { eventCount, eventsOf } from './outbox-bodies.ts';
import { WebhookPoster } from './post.ts';
import type { PullHandOver } from './recorder.ts';

/** How often an idle delivery loop looks for events other replicas queued. */
const idlePoll = 1000;
/** How often a replica without a webhook's lease checks whether it became free. */
const leasePoll = 5000;

export type DeliveryOutcome = 'delivered' | 'retried' | 'dropped';

/** What one attempt to send came to. */
type Sent = { kind: 'delivered' } | { kind: 'refused'; status: number } | { kind: 'failed'; failure: string } | { kind: 'stopped' };

/**
 * Delivers queued events to webhooks: per webhook one loop, holding that
 * webhook's lease, so that across replicas one sender delivers in queue
 * order. An event is removed once the webhook answers 2xx; other answers
 * and network failures retry it with exponential backoff, holding back the
 * events behind it (order is kept), until it is older than `maxAge`. An
 * answer of 4xx other than 408 and 429 means the webhook will never take
 * the event: it is dropped at once (logged with its body). Events this
 * process gathers (pulls) are taken from memory while the webhook's queue
 * is empty (`PullHandOver`), and sent first: they were gathered before
 * anything queued here since.
 */
export class WebhookDispatcher {
  readonly #config: EventsConfig;
  readonly #queue: EventQueue;
  readonly #leases: Leases;
  readonly #logger: Logger;
  readonly #count: (webhook: string, outcome: DeliveryOutcome, events: number) => void;
  readonly #stop = new AbortController();
  readonly #wakers = new Set<() => void>();
  readonly #poster = new WebhookPoster();
  readonly #handOver: PullHandOver | undefined;
  #loops: Promise<void>[] = [];
  /** How often `wake` was called: a loop that looked before a wake-up does not go idle after it. */
  #wakes = 0;

  constructor(
    config: EventsConfig,
    queue: EventQueue,
    leases: Leases,
    logger: Logger,
    count: (webhook: string, outcome: DeliveryOutcome, events: number) => void = () => {},
    handOver?: PullHandOver,
  ) {
    this.#config = config;
    this.#handOver = handOver;
    this.#queue = queue;
    this.#leases = leases;
    this.#logger = logger.child({ component: 'webhooks' });
    this.#count = count;
  }

  start(): void {
    this.#loops = this.#config.webhooks.map((hook) => this.#loop(hook));
  }

  /** New events were queued here: loops waiting idle look now. */
  wake(): void {
    this.#wakes++;
    for (const wake of this.#wakers) wake();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#loops);
    this.#poster.close();
  }

  async #loop(hook: WebhookConfig): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      try {
        const lease = await this.#leases.acquire(`events:${hook.name}`);
        if (lease === undefined) {
          await this.#idle(leasePoll);
          continue;
        }
        try {
          await this.#deliverWhileHeld(hook, lease.signal);
        } finally {
          // What is still handed over goes into the queue, for whoever holds the lease next.
          await this.#handOver?.spill(hook.name, []);
          await lease.release();
        }
      } catch (error) {
        if (stop.aborted) return;
        this.#logger.warn({ webhook: hook.name, err: error }, 'webhook delivery interrupted; resuming');
        await this.#idle(leasePoll);
      }
    }
  }

  async #deliverWhileHeld(hook: WebhookConfig, held: AbortSignal): Promise<void> {
    const stop = this.#stop.signal;
    // Rows read per request: as many as the last request took, and one more. Rows that hold a whole
    // batch each are read one or two at a time, not batchSize at once (their bodies are large).
    let limit = hook.batchSize;
    while (!stop.aborted && !held.aborted) {
      const wakes = this.#wakes;
      const mark = this.#handOver?.mark(hook.name);
      const batch = await this.#queue.head(hook.name, limit);
      const first = batch[0];
      if (mark !== undefined) this.#handOver?.queueSeen(hook.name, mark, first === undefined);
      // Rows handed over in memory go first: they were gathered before anything queued here since.
      const handed = this.#handOver?.take(hook.name);
      if (handed !== undefined) {
        await this.#sendHanded(hook, handed.row, handed.events);
        continue;
      }
      if (first === undefined) {
        await this.#idle(idlePoll, wakes);
        continue;
      }
      const age = Date.now() - first.enqueuedAt.getTime();
      if (age > this.#config.retry.maxAge) {
        await this.#drop(hook, [first], `undelivered after ${Math.round(age / 1000)} s (events.retry.maxAge)`);
        continue;
      }
      const wait = first.nextAttemptAt.getTime() - Date.now();
      if (wait > 0) {
        await sleep(wait, undefined, { signal: AbortSignal.any([stop, held]) }).catch(() => undefined);
        continue;
      }
      const sending = this.#fitting(hook, batch);
      limit = sending.rows.length < batch.length ? sending.rows.length + 1 : Math.min(hook.batchSize, 2 * limit);
      await this.#attempt(hook, sending);
    }
  }

  /** The ready rows at the head that one request takes (at least the first). */
  #fitting(hook: WebhookConfig, batch: QueuedEvent[]): { rows: QueuedEvent[]; events: number } {
    const rows: QueuedEvent[] = [];
    let events = 0;
    const now = Date.now();
    for (const row of batch) {
      const count = eventCount(row.body);
      if (rows.length > 0 && (events + count > hook.batchSize || row.nextAttemptAt.getTime() > now)) break;
      rows.push(row);
      events += count;
    }
    return { rows, events };
  }

  /** The request bodies that send `rows`: one, unless a row holds more events than a batch. */
  #bodies(hook: WebhookConfig, rows: readonly OutboxRow[], events: number): string[] {
    const [only] = rows;
    if (rows.length === 1 && only !== undefined && events <= hook.batchSize) {
      // A row as it was written is already what the webhook takes (a grouped row is a JSON array).
      return [hook.batchSize > 1 && events === 1 ? `[${only.body}]` : only.body];
    }
    const all = rows.flatMap((row) => eventsOf(row.body));
    const bodies: string[] = [];
    for (let start = 0; start < all.length; start += hook.batchSize) {
      const chunk = all.slice(start, start + hook.batchSize);
      bodies.push(hook.batchSize > 1 ? `[${chunk.join(',')}]` : (chunk[0] as string));
    }
    return bodies;
  }

  /** Sends `rows`' events to the webhook. */
  async #send(hook: WebhookConfig, rows: readonly OutboxRow[], events: number): Promise<Sent> {
    try {
      for (const body of this.#bodies(hook, rows, events)) {
        const status = await this.#poster.post(
          new URL(hook.url),
          { ...hook.headers, 'content-type': hook.batchSize > 1 ? 'application/cloudevents-batch+json; charset=utf-8' : 'application/cloudevents+json; charset=utf-8' },
          body,
          AbortSignal.any([AbortSignal.timeout(hook.timeout), this.#stop.signal]),
        );
        if (status >= 200 && status < 300) continue;
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) return { kind: 'refused', status };
        throw new Error(`HTTP ${status}`);
      }
      return { kind: 'delivered' };
    } catch (error) {
      if (this.#stop.signal.aborted) return { kind: 'stopped' };
      const failure = (error as Error).cause instanceof Error ? `${(error as Error).message}: ${((error as Error).cause as Error).message}` : (error as Error).message;
      return { kind: 'failed', failure };
    }
  }

  async #attempt(hook: WebhookConfig, { rows, events }: { rows: QueuedEvent[]; events: number }): Promise<void> {
    const ids = rows.map((row) => row.id);
    const sent = await this.#send(hook, rows, events);
    if (sent.kind === 'stopped') return;
    if (sent.kind === 'refused') {
      await this.#drop(hook, rows, `the webhook refused it: HTTP ${sent.status}`);
      return;
    }
    if (sent.kind === 'delivered') {
      await this.#queue.remove(ids);
      this.#count(hook.name, 'delivered', events);
      return;
    }
    const attempts = (rows[0]?.attempts ?? 0) + 1;
    const delay = this.#retryDelay(attempts);
    await this.#queue.postpone(ids, new Date(Date.now() + delay), sent.failure);
    this.#retried(hook, events, attempts, delay, sent.failure);
  }

  /**
   * Sends a row handed over in memory. Delivered, it is gone; refused, it
   * is dropped as a queued one would be; failed, it goes into the queue as
   * a first failed attempt, with everything handed over behind it, and is
   * retried from there; interrupted by a stop, it goes into the queue.
   */
  async #sendHanded(hook: WebhookConfig, row: OutboxRow, events: number): Promise<void> {
    const sent = await this.#send(hook, [row], events);
    if (sent.kind === 'delivered') this.#count(hook.name, 'delivered', events);
    else if (sent.kind === 'refused') this.#dropped(hook, row, 0, `the webhook refused it: HTTP ${sent.status}`, events);
    else if (sent.kind === 'stopped') await this.#handOver?.spill(hook.name, [row]);
    else {
      const delay = this.#retryDelay(1);
      await this.#handOver?.spill(hook.name, [{ ...row, failedOnce: { retryAt: new Date(Date.now() + delay), error: sent.failure.slice(0, 1000) } }]);
      this.#retried(hook, events, 1, delay, sent.failure);
    }
  }

  /** How long to wait before the next attempt, after `attempts` failed ones. */
  #retryDelay(attempts: number): number {
    const { initialDelay, maxDelay } = this.#config.retry;
    return Math.min(maxDelay, initialDelay * 2 ** Math.min(attempts - 1, 30));
  }

  #retried(hook: WebhookConfig, events: number, attempts: number, retryInMs: number, failure: string): void {
    this.#count(hook.name, 'retried', events);
    this.#logger.warn({ webhook: hook.name, events, attempts, retryInMs, failure }, 'webhook delivery failed; will retry');
  }

  async #drop(hook: WebhookConfig, rows: QueuedEvent[], reason: string): Promise<void> {
    await this.#queue.remove(rows.map((row) => row.id));
    for (const row of rows) this.#dropped(hook, row, row.attempts, reason);
  }

  #dropped(hook: WebhookConfig, row: OutboxRow, attempts: number, reason: string, events = eventCount(row.body)): void {
    this.#count(hook.name, 'dropped', events);
    this.#logger.error({ webhook: hook.name, attempts, event: row.body }, `webhook event given up: ${reason}`);
  }

  /** Waits `ms`, less when woken or stopped; not at all when woken since `wakes` was read. */
  async #idle(ms: number, wakes = this.#wakes): Promise<void> {
    if (wakes !== this.#wakes) return;
    const wake = new AbortController();
    const waker = () => wake.abort();
    this.#wakers.add(waker);
    try {
      await sleep(ms, undefined, { signal: AbortSignal.any([wake.signal, this.#stop.signal]) }).catch(() => undefined);
    } finally {
      this.#wakers.delete(waker);
    }
  }
}
