import type { EventsConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import type { OutboxRow } from '../meta/meta-store.ts';
import type { EventQueue } from '../meta/operations-store.ts';
import { repositoryScope, scopeMatcher } from '../policy/globs.ts';
import { eventTypes, type CloudEvent } from './cloudevents.ts';

/** How long pull events wait in memory to be written together. */
const pullFlushDelay = 200;
/** Past this many, pull events waiting in memory are dropped (the metadata store cannot keep up); counted. */
const maxBuffered = 10_000;

interface Subscriber {
  name: string;
  types: ReadonlySet<string>;
  wants: (event: CloudEvent, repository: string | undefined) => boolean;
}

/**
 * Puts events into the durable queue, one row per subscribed webhook.
 * Changes to repositories give their rows (`rows`) to the write that makes
 * the change, which commits them in its own transaction. Other events are
 * written here, one write after another so that they keep their order: GC
 * passes before the caller goes on, pulls gathered for a moment and written
 * together, so that pulls never wait for the metadata store.
 */
export class EventRecorder {
  readonly #source: string;
  readonly #queue: EventQueue;
  readonly #logger: Logger;
  readonly #subscribers: Subscriber[];
  readonly #count: (webhook: string, outcome: 'queued' | 'lost') => void;
  #buffer: OutboxRow[] = [];
  #writing: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  readonly #listeners: (() => void)[] = [];

  constructor(config: EventsConfig, queue: EventQueue, logger: Logger, count: (webhook: string, outcome: 'queued' | 'lost') => void = () => {}) {
    this.#source = config.source;
    this.#queue = queue;
    this.#logger = logger;
    this.#count = count;
    this.#subscribers = config.webhooks.map((hook) => {
      const repositories = scopeMatcher(repositoryScope(hook.repositories));
      const types = new Set<string>(hook.types);
      return {
        name: hook.name,
        types,
        wants: (event, repository) => types.has(eventTypes[event.type]) && (repository === undefined || repositories(repository)),
      };
    });
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
    const takers = this.#subscribers.filter((subscriber) => subscriber.wants(event, repository));
    if (takers.length === 0) return [];
    const body = JSON.stringify(event);
    return takers.map((subscriber) => ({ webhook: subscriber.name, body }));
  }

  /** Rows from `rows` were committed with their change. */
  committed(rows: readonly OutboxRow[]): void {
    for (const row of rows) this.#count(row.webhook, 'queued');
    for (const listener of this.#listeners) listener();
  }

  /** Writes the event now; resolves once it is in the queue (or could not be written, which is logged). */
  async record(event: CloudEvent, repository?: string): Promise<void> {
    if (this.#add(event, repository)) await this.flush();
  }

  /** Gathers the event with others, written within a moment. */
  recordSoon(event: CloudEvent, repository?: string): void {
    if (this.#buffer.length >= maxBuffered) {
      for (const subscriber of this.#subscribers) if (subscriber.wants(event, repository)) this.#count(subscriber.name, 'lost');
      return;
    }
    if (!this.#add(event, repository)) return;
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), pullFlushDelay);
      this.#timer.unref();
    }
  }

  /** Writes everything gathered so far. Never rejects. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing = this.#writing.then(async () => {
      const rows = this.#buffer;
      this.#buffer = [];
      if (rows.length === 0) return;
      try {
        await this.#queue.enqueue(rows);
        this.committed(rows);
      } catch (error) {
        for (const row of rows) this.#count(row.webhook, 'lost');
        this.#logger.error({ err: error, events: rows.length }, 'could not queue events; they are lost');
      }
    });
    return this.#writing;
  }

  #add(event: CloudEvent, repository: string | undefined): boolean {
    const rows = this.rows(event, repository);
    this.#buffer.push(...rows);
    return rows.length > 0;
  }
}
