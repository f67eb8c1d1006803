import { setTimeout as sleep } from 'node:timers/promises';
import type { EventsConfig, WebhookConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import type { EventQueue, Leases, QueuedEvent } from '../meta/operations-store.ts';
import { eventCount, eventsOf } from './outbox-bodies.ts';
import { WebhookPoster } from './post.ts';

/** How often an idle delivery loop looks for events other replicas queued. */
const idlePoll = 1000;
/** How often a replica without a webhook's lease checks whether it became free. */
const leasePoll = 5000;

export type DeliveryOutcome = 'delivered' | 'retried' | 'dropped';

/**
 * Delivers queued events to webhooks: per webhook one loop, holding that
 * webhook's lease, so that across replicas one sender delivers in queue
 * order. An event is removed once the webhook answers 2xx; other answers
 * and network failures retry it with exponential backoff, holding back the
 * events behind it (order is kept), until it is older than `maxAge`. An
 * answer of 4xx other than 408 and 429 means the webhook will never take
 * the event: it is dropped at once (logged with its body).
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
  #loops: Promise<void>[] = [];

  constructor(config: EventsConfig, queue: EventQueue, leases: Leases, logger: Logger, count: (webhook: string, outcome: DeliveryOutcome, events: number) => void = () => {}) {
    this.#config = config;
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
      const batch = await this.#queue.head(hook.name, limit);
      const first = batch[0];
      if (first === undefined) {
        await this.#idle(idlePoll);
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
  #bodies(hook: WebhookConfig, rows: QueuedEvent[], events: number): string[] {
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

  async #attempt(hook: WebhookConfig, { rows, events }: { rows: QueuedEvent[]; events: number }): Promise<void> {
    const ids = rows.map((row) => row.id);
    let failure: string;
    try {
      for (const body of this.#bodies(hook, rows, events)) {
        const status = await this.#poster.post(
          new URL(hook.url),
          { ...hook.headers, 'content-type': hook.batchSize > 1 ? 'application/cloudevents-batch+json; charset=utf-8' : 'application/cloudevents+json; charset=utf-8' },
          body,
          AbortSignal.any([AbortSignal.timeout(hook.timeout), this.#stop.signal]),
        );
        if (status >= 200 && status < 300) continue;
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
          await this.#drop(hook, rows, `the webhook refused it: HTTP ${status}`);
          return;
        }
        throw new Error(`HTTP ${status}`);
      }
      failure = '';
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      failure = (error as Error).cause instanceof Error ? `${(error as Error).message}: ${((error as Error).cause as Error).message}` : (error as Error).message;
    }
    if (failure === '') {
      await this.#queue.remove(ids);
      this.#count(hook.name, 'delivered', events);
      return;
    }
    const attempts = (rows[0]?.attempts ?? 0) + 1;
    const { initialDelay, maxDelay } = this.#config.retry;
    const delay = Math.min(maxDelay, initialDelay * 2 ** Math.min(attempts - 1, 30));
    await this.#queue.postpone(ids, new Date(Date.now() + delay), failure);
    this.#count(hook.name, 'retried', events);
    this.#logger.warn({ webhook: hook.name, events, attempts, retryInMs: delay, failure }, 'webhook delivery failed; will retry');
  }

  async #drop(hook: WebhookConfig, rows: QueuedEvent[], reason: string): Promise<void> {
    await this.#queue.remove(rows.map((row) => row.id));
    for (const row of rows) {
      this.#count(hook.name, 'dropped', eventCount(row.body));
      this.#logger.error({ webhook: hook.name, attempts: row.attempts, event: row.body }, `webhook event given up: ${reason}`);
    }
  }

  /** Waits `ms`, less when woken or stopped. */
  async #idle(ms: number): Promise<void> {
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
