import type { EventsConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import type { OutboxRow } from '../meta/meta-store.ts';
import type { EventQueue } from '../meta/operations-store.ts';
import { repositoryScope, scopeMatcher } from '../policy/globs.ts';
import { eventTypes, type BerthEventType, type CloudEvent } from './cloudevents.ts';
import { eventCount, groupedBody } from './outbox-bodies.ts';

/** How long pull events wait in memory to be written together. */
const pullFlushDelay = 200;
/**
 * Gathered pull events are written at once, on the next turn, when about
 * this many wait for a webhook (whole batches of it): a busy registry then writes a little often instead of a
 * large batch every 200 ms, which held up the requests behind it (at
 * 20,000 pulls a second, 4,000 events built and written in one go).
 */
const pullFlushCount = 256;
/** Past this many, pull events waiting in memory are dropped (the metadata store cannot keep up); counted. */
const maxBuffered = 10_000;
/** Past this many events handed over and not yet sent, what is gathered is written to the queue again (the webhook is slower than the pulls). */
const maxHanded = maxBuffered;
/** Repositories whose webhooks are remembered (per event type); past it the memory starts again. */
const maxRemembered = 10_000;

/** An event gathered with others: its JSON is built when it is written, once for every webhook taking it. */
interface Gathered {
  build: () => string;
  json?: string;
}

interface Subscriber {
  name: string;
  batchSize: number;
  /** Gathered events written without waiting for the timer: whole batches, about pullFlushCount events. */
  flushAt: number;
  types: ReadonlySet<string>;
  repositories: (repository: string) => boolean;
  /**
   * Whether this process's sender of the webhook found its queue empty, and
   * nothing was queued for the webhook here since: what is gathered is then
   * handed to the sender in memory instead of written (see PullHandOver).
   */
  drained: boolean;
  /** Rows queued for the webhook here so far: a sender's word that the queue is empty counts only if none came since it looked. */
  queued: number;
  /** Rows handed over and not yet taken by the sender, oldest first, and the events they hold. */
  handed: HandedRow[];
  handedEvents: number;
}

/** A row handed to the sender, and how many events it holds. */
export interface HandedRow {
  row: OutboxRow;
  events: number;
}

/**
 * What this process's sender of a webhook (the dispatcher, holding the
 * webhook's lease) uses to take gathered events straight from memory. While
 * the webhook's queue is empty, a busy registry's pull events were written
 * only to be read and deleted a moment later (about a third of what a pull
 * event cost); handed over, they are sent without touching the metadata store,
 * and written to the queue only when sending them fails (then retried from
 * there as every event is) or the sender stops.
 */
export interface PullHandOver {
  /** Taken before looking at the queue, for `queueSeen`. */
  mark(webhook: string): number;
  /**
   * What the sender found in the queue, looking after `mark`. Empty, what
   * is gathered for the webhook from now on is handed over (unless
   * something was queued here since the mark); not empty, it goes into the
   * queue behind what is there (the sender sends what is handed over
   * first, then the queue: nothing waits behind memory for long).
   */
  queueSeen(webhook: string, mark: number, empty: boolean): void;
  /** The oldest row handed over, taken; undefined when none waits. */
  take(webhook: string): HandedRow | undefined;
  /**
   * The sender takes no more from memory: `undelivered` (taken, not sent)
   * and every row still handed over are written to the queue, in order,
   * and what is gathered is written there again until the queue is found
   * empty once more. Never rejects; what cannot be written is counted lost.
   */
  spill(webhook: string, undelivered: readonly OutboxRow[]): Promise<void>;
}

/**
 * Puts events into the durable queue. Changes to repositories give their
 * rows (`rows`, one per subscribed webhook) to the write that makes the
 * change, which commits them in its own transaction. Other events are
 * written here, one write after another so that they keep their order: GC
 * passes before the caller goes on, pulls gathered for a moment and written
 * together, so that pulls never wait for the metadata store. What is
 * gathered is written as few rows as the webhooks' batches allow: one row
 * holds up to `batchSize` events (see outbox-bodies.ts). While a
 * webhook's queue is empty and its sender runs in this process, those rows
 * are handed to the sender in memory instead (`PullHandOver`), and written
 * only if sending them fails.
 */
export class EventRecorder implements PullHandOver {
  readonly #source: string;
  readonly #queue: EventQueue;
  readonly #logger: Logger;
  readonly #subscribers: Subscriber[];
  readonly #count: (webhook: string, outcome: 'queued' | 'lost', events: number) => void;
  /** Events gathered per webhook, in order. */
  #buffer = new Map<Subscriber, Gathered[]>();
  #buffered = 0;
  #writing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #flushSoon = false;
  readonly #listeners: (() => void)[] = [];
  #takers = new Map<string, Subscriber[]>();

  constructor(config: EventsConfig, queue: EventQueue, logger: Logger, count: (webhook: string, outcome: 'queued' | 'lost', events: number) => void = () => {}) {
    this.#source = config.source;
    this.#queue = queue;
    this.#logger = logger;
    this.#count = count;
    this.#subscribers = config.webhooks.map((hook) => ({
      name: hook.name,
      batchSize: hook.batchSize,
      flushAt: hook.batchSize * Math.ceil(pullFlushCount / hook.batchSize),
      types: new Set<string>(hook.types),
      repositories: scopeMatcher(repositoryScope(hook.repositories)),
      drained: false,
      queued: 0,
      handed: [],
      handedEvents: 0,
    }));
  }

  get source(): string {
    return this.#source;
  }

  /** Whether any webhook takes events of this category. */
  wants(category: string): boolean {
    return this.#subscribers.some((subscriber) => subscriber.types.has(category));
  }

  /** Calls `listener` after events were written (the dispatcher wakes up). */
  onQueued(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * The queue rows of an event, one per webhook that takes it, for a write
   * to commit with the change it describes; `committed` once it has.
   */
  rows(event: CloudEvent, repository?: string): OutboxRow[] {
    const takers = this.#takersOf(event.type, repository);
    if (takers.length === 0) return [];
    const body = JSON.stringify(event);
    // The change goes into the queue: events gathered from now on go there behind it.
    for (const subscriber of takers) this.#queuing(subscriber);
    return takers.map((subscriber) => ({ webhook: subscriber.name, body }));
  }

  /** Rows from `rows` were committed with their change. */
  committed(rows: readonly OutboxRow[]): void {
    for (const row of rows) {
      this.#count(row.webhook, 'queued', eventCount(row.body));
      // Should the sender have found the queue empty just before the commit, what is gathered now goes behind it.
      const subscriber = this.#subscriber(row.webhook);
      if (subscriber !== undefined) this.#queuing(subscriber);
    }
    for (const listener of this.#listeners) listener();
  }

  /** Writes the event now; resolves once it is in the queue or handed to the sender (or could not be written, which is logged). */
  async record(event: CloudEvent, repository?: string): Promise<void> {
    const takers = this.#takersOf(event.type, repository);
    if (takers.length === 0) return;
    const json = JSON.stringify(event);
    this.#gather(takers, { build: () => json, json });
    await this.flush();
  }

  /**
   * Gathers an event with others, written within a moment. `serialise`
   * builds its JSON when it is written (so that nothing but the closure
   * stays alive in between), and only when a webhook takes it; it must
   * capture what it needs, the time included. When too many wait
   * already, the event is dropped and counted as lost.
   */
  recordSoon(type: BerthEventType, repository: string | undefined, serialise: () => string): void {
    const takers = this.#takersOf(type, repository);
    if (takers.length === 0) return;
    if (this.#buffered >= maxBuffered) {
      for (const subscriber of takers) this.#count(subscriber.name, 'lost', 1);
      return;
    }
    const full = this.#gather(takers, { build: serialise });
    if (full && !this.#flushSoon) {
      this.#flushSoon = true;
      setImmediate(() => {
        this.#flushSoon = false;
        void this.flush();
      });
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), pullFlushDelay);
      this.#timer.unref();
    }
  }

  /** Writes everything gathered so far, in one transaction. Never rejects. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing = this.#writing.then(async () => {
      const { queued, handed } = this.#take();
      if (handed > 0) for (const listener of this.#listeners) listener();
      await this.#enqueue(queued);
    });
    return this.#writing;
  }

  /** Events handed over and not yet sent, per webhook (for the backlog gauge). */
  handedBacklog(): Map<string, number> {
    return new Map(this.#subscribers.filter((subscriber) => subscriber.handedEvents > 0).map((subscriber) => [subscriber.name, subscriber.handedEvents]));
  }

  mark(webhook: string): number {
    return this.#subscriber(webhook)?.queued ?? 0;
  }

  queueSeen(webhook: string, mark: number, empty: boolean): void {
    const subscriber = this.#subscriber(webhook);
    if (subscriber === undefined) return;
    subscriber.drained = empty && subscriber.queued === mark && subscriber.handedEvents < maxHanded;
  }

  take(webhook: string): HandedRow | undefined {
    const subscriber = this.#subscriber(webhook);
    const handed = subscriber?.handed.shift();
    if (subscriber !== undefined && handed !== undefined) subscriber.handedEvents -= handed.events;
    return handed;
  }

  spill(webhook: string, undelivered: readonly OutboxRow[]): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      const subscriber = this.#subscriber(webhook);
      if (subscriber === undefined) return;
      const rows = [...undelivered, ...subscriber.handed.map((handed) => handed.row)];
      subscriber.handed = [];
      subscriber.handedEvents = 0;
      this.#queuing(subscriber);
      // Counted as queued when they were handed over.
      await this.#enqueue(rows, false);
    });
    return this.#writing;
  }

  /** Writes rows to the queue (counted as queued, unless they were when handed over); never rejects. */
  async #enqueue(rows: readonly OutboxRow[], count = true): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.#queue.enqueue(rows);
      if (count) this.committed(rows);
      else for (const listener of this.#listeners) listener();
    } catch (error) {
      for (const row of rows) this.#count(row.webhook, 'lost', eventCount(row.body));
      this.#logger.error({ err: error, rows: rows.length }, 'could not queue events; they are lost');
    }
  }

  /** Rows go into the queue for the subscriber: the sender's word that it was empty no longer holds. */
  #queuing(subscriber: Subscriber): void {
    subscriber.drained = false;
    subscriber.queued++;
  }

  #subscriber(webhook: string): Subscriber | undefined {
    return this.#subscribers.find((subscriber) => subscriber.name === webhook);
  }

  /** Adds the event for each webhook taking it; whether one of them now has `flushAt` events waiting. */
  #gather(takers: readonly Subscriber[], event: Gathered): boolean {
    let full = false;
    for (const subscriber of takers) {
      const waiting = this.#buffer.get(subscriber);
      if (waiting === undefined) this.#buffer.set(subscriber, [event]);
      else waiting.push(event);
      if ((waiting?.length ?? 1) >= subscriber.flushAt) full = true;
      this.#buffered++;
    }
    return full;
  }

  /**
   * What was gathered, as rows of at most each webhook's batch size: handed
   * over to the webhook's sender while its queue is empty (how many rows
   * were), the rest to be queued. A sender that falls more than
   * `maxHanded` events behind gets the rest through the queue again.
   */
  #take(): { queued: OutboxRow[]; handed: number } {
    const queued: OutboxRow[] = [];
    let handed = 0;
    for (const [subscriber, events] of this.#buffer) {
      for (let start = 0; start < events.length; start += subscriber.batchSize) {
        const bodies = events.slice(start, start + subscriber.batchSize).map((event) => (event.json ??= event.build()));
        const row = { webhook: subscriber.name, body: groupedBody(bodies) };
        if (subscriber.drained && subscriber.handedEvents >= maxHanded) this.#queuing(subscriber);
        if (subscriber.drained) {
          subscriber.handed.push({ row, events: bodies.length });
          subscriber.handedEvents += bodies.length;
          this.#count(subscriber.name, 'queued', bodies.length);
          handed++;
        } else {
          queued.push(row);
          subscriber.queued++;
        }
      }
    }
    this.#buffer = new Map();
    this.#buffered = 0;
    return { queued, handed };
  }

  /** The webhooks that take events of this type and repository (remembered: pulls ask thousands of times a second). */
  #takersOf(type: BerthEventType, repository: string | undefined): Subscriber[] {
    const key = repository === undefined ? type : `${type} ${repository}`;
    let takers = this.#takers.get(key);
    if (takers === undefined) {
      const category = eventTypes[type];
      takers = this.#subscribers.filter((subscriber) => subscriber.types.has(category) && (repository === undefined || subscriber.repositories(repository)));
      if (this.#takers.size >= maxRemembered) this.#takers = new Map();
      this.#takers.set(key, takers);
    }
    return takers;
  }
}
