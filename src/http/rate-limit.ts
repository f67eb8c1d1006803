import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';

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

const healthRoutes = new Set(['/healthz', '/livez', '/readyz']);

/** Refuses requests over the per-client limit before any other work is done for them. */
export function registerRateLimit(app: FastifyInstance, settings: RateLimitSettings): void {
  const limiter = new RateLimiter(settings);
  app.addHook('onRequest', async (request) => {
    // Load balancers probe health often from one address; that is no abuse.
    if (healthRoutes.has(request.routeOptions.url ?? '')) return;
    const retryAfter = limiter.take(request.ip);
    if (retryAfter === undefined) return;
    throw new RegistryError(
      'TOOMANYREQUESTS',
      `too many requests from ${request.ip}: the limit is ${settings.requests} per ${settings.per / 1000}s (bursts of ${settings.burst}); retry in ${retryAfter}s`,
      { headers: { 'retry-after': String(retryAfter) }, detail: { retryAfter } },
    );
  });
}
