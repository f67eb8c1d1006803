import type { PeerChannel } from './peers.ts';

export interface RateLimitSettings {
  /** Requests per `per` milliseconds, sustained. */
  requests: number;
  per: number;
  /** Requests a client may make at once above the sustained rate. */
  burst: number;
  /** Clients tracked at most; the least recently seen are forgotten first. */
  clients: number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** What workers tell each other: how many requests each client spent since the last message. */
export type Spending = [client: string, requests: number][];

/**
 * A token bucket per client address: each client may make `burst`
 * requests at once and `requests` per `per` after that. Over the limit, a
 * request is answered 429 TOOMANYREQUESTS with Retry-After. Memory is
 * bounded by `clients`.
 *
 * With several workers, `share` carries each worker's spending to the
 * others once per event-loop turn, so every worker's buckets count the
 * requests all of them allowed: a client spreading its connections over
 * workers gets the same limit, give or take one turn's requests.
 */
export class RateLimiter {
  readonly #settings: RateLimitSettings;
  readonly #buckets = new Map<string, Bucket>();
  readonly #share: PeerChannel<Spending> | undefined;
  #spent: Map<string, number> | undefined;

  constructor(settings: RateLimitSettings, share?: PeerChannel<Spending>) {
    this.#settings = settings;
    this.#share = share;
    share?.onMessage((spending) => {
      const now = Date.now();
      for (const [client, requests] of spending) {
        const bucket = this.#refill(client, now);
        bucket.tokens = Math.max(0, bucket.tokens - requests);
      }
    });
  }

  /** Takes one request from the client's allowance; undefined when allowed, else the seconds until the next one would be. */
  take(client: string, now = Date.now()): number | undefined {
    const bucket = this.#refill(client, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      if (this.#share !== undefined) this.#tell(client);
      return undefined;
    }
    return this.#wait(bucket);
  }

  #tell(client: string): void {
    if (this.#spent === undefined) {
      const spent = new Map<string, number>();
      this.#spent = spent;
      setImmediate(() => {
        this.#spent = undefined;
        this.#share?.post([...spent]);
      });
    }
    this.#spent.set(client, (this.#spent.get(client) ?? 0) + 1);
  }

  /** Like `take`, without using up anything: whether the client has allowance left. */
  blocked(client: string, now = Date.now()): number | undefined {
    const bucket = this.#refill(client, now);
    return bucket.tokens >= 1 ? undefined : this.#wait(bucket);
  }

  #refill(client: string, now: number): Bucket {
    const { requests, per, burst, clients } = this.#settings;
    const capacity = Math.max(burst, 1);
    const bucket = this.#buckets.get(client) ?? { tokens: capacity, updatedAt: now };
    this.#buckets.delete(client);
    bucket.tokens = Math.min(capacity, bucket.tokens + (now - bucket.updatedAt) * (requests / per));
    bucket.updatedAt = now;
    this.#buckets.set(client, bucket);
    while (this.#buckets.size > clients) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest === undefined) break;
      this.#buckets.delete(oldest);
    }
    return bucket;
  }

  #wait(bucket: Bucket): number {
    const { requests, per } = this.#settings;
    return Math.max(1, Math.ceil((1 - bucket.tokens) / (requests / per) / 1000));
  }
}
