import type { CompletedRequest, RequestObserver } from '../http/observer.ts';

export interface RecentEvent {
  at: Date;
  /** push, delete, gc, retention */
  action: string;
  repository?: string;
  /** A tag or digest. */
  reference?: string;
  user?: string;
  detail?: string;
}

/**
 * The latest registry changes seen by this process, newest first, for the
 * operations page: pushes and deletes through /v2/ (as an observer) and the
 * UI, garbage collection passes. Kept in memory only: the page gathers the
 * lists of every worker of the process, each replica shows its own, and a
 * restart starts afresh; webhooks carry the durable record.
 */
export class RecentEvents implements RequestObserver {
  readonly #events: RecentEvent[] = [];
  readonly #capacity: number;

  constructor(capacity = 100) {
    this.#capacity = capacity;
  }

  record(event: RecentEvent): void {
    this.#events.unshift(event);
    if (this.#events.length > this.#capacity) this.#events.pop();
  }

  list(limit = this.#capacity): RecentEvent[] {
    return this.#events.slice(0, limit);
  }

  afterResponse(request: CompletedRequest): void {
    const { endpoint, method, status, repository } = request;
    if (endpoint !== 'manifest' || repository === undefined) return;
    const reference = request.params['reference'];
    const action = method === 'PUT' && status === 201 ? 'push' : method === 'DELETE' && status === 202 ? 'delete' : undefined;
    if (action === undefined) return;
    this.record({ at: new Date(), action, repository, ...(reference === undefined ? {} : { reference }) });
  }
}
