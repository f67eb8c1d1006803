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

/**
 * A token bucket per client address: each client may make `burst`
 * requests at once and `requests` per `per` after that. Over the limit, a
 * request is answered 429 TOOMANYREQUESTS with Retry-After. Memory is
 * bounded by `clients`.
 */
export class RateLimiter {
  readonly #settings: RateLimitSettings;
  readonly #buckets = new Map<string, Bucket>();

  constructor(settings: RateLimitSettings) {
    this.#settings = settings;
  }

  /** Takes one request from the client's allowance; undefined when allowed, else the seconds until the next one would be. */
  take(client: string, now = Date.now()): number | undefined {
    const bucket = this.#refill(client, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    return this.#wait(bucket);
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
