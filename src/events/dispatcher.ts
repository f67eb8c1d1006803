import { setTimeout as sleep } from 'node:timers/promises';
import type { EventsConfig, WebhookConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import type { EventQueue, Leases, QueuedEvent } from '../meta/operations-store.ts';

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
  readonly #count: (webhook: string, outcome: DeliveryOutcome) => void;
  readonly #stop = new AbortController();
  readonly #wakers = new Set<() => void>();
  #loops: Promise<void>[] = [];

  constructor(config: EventsConfig, queue: EventQueue, leases: Leases, logger: Logger, count: (webhook: string, outcome: DeliveryOutcome) => void = () => {}) {
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
    while (!stop.aborted && !held.aborted) {
      const batch = await this.#queue.head(hook.name, hook.batchSize);
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
      await this.#attempt(
        hook,
        batch.filter((event) => event.nextAttemptAt.getTime() <= Date.now()),
      );
    }
  }

  async #attempt(hook: WebhookConfig, batch: QueuedEvent[]): Promise<void> {
    const ids = batch.map((event) => event.id);
    let failure: string;
    try {
      const response = await fetch(hook.url, {
        method: 'POST',
        headers: {
          ...hook.headers,
          'content-type': hook.batchSize > 1 ? 'application/cloudevents-batch+json; charset=utf-8' : 'application/cloudevents+json; charset=utf-8',
        },
        body: hook.batchSize > 1 ? `[${batch.map((event) => event.body).join(',')}]` : (batch[0]?.body ?? ''),
        signal: AbortSignal.any([AbortSignal.timeout(hook.timeout), this.#stop.signal]),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.ok) {
        await this.#queue.remove(ids);
        for (const _event of batch) this.#count(hook.name, 'delivered');
        return;
      }
      if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) {
        await this.#drop(hook, batch, `the webhook refused it: HTTP ${response.status}`);
        return;
      }
      failure = `HTTP ${response.status}`;
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      failure = (error as Error).cause instanceof Error ? `${(error as Error).message}: ${((error as Error).cause as Error).message}` : (error as Error).message;
    }
    const attempts = (batch[0]?.attempts ?? 0) + 1;
    const { initialDelay, maxDelay } = this.#config.retry;
    const delay = Math.min(maxDelay, initialDelay * 2 ** Math.min(attempts - 1, 30));
    await this.#queue.postpone(ids, new Date(Date.now() + delay), failure);
    for (const _event of batch) this.#count(hook.name, 'retried');
    this.#logger.warn({ webhook: hook.name, events: ids.length, attempts, retryInMs: delay, failure }, 'webhook delivery failed; will retry');
  }

  async #drop(hook: WebhookConfig, events: QueuedEvent[], reason: string): Promise<void> {
    await this.#queue.remove(events.map((event) => event.id));
    for (const event of events) {
      this.#count(hook.name, 'dropped');
      this.#logger.error({ webhook: hook.name, attempts: event.attempts, event: event.body }, `webhook event given up: ${reason}`);
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
