import { Counter, Gauge, type Registry } from 'prom-client';

/** Why a cached tag was served without asking the upstream whether it moved. */
export type StaleReason = 'outage' | 'rate_limited' | 'near_limit';

/** What one pull-through cache reports; the server wiring hands each cache its own. */
export interface ProxyObserver {
  /** A request sent to the upstream (token requests aside). */
  upstreamRequest(): void;
  /** The upstream answered 429. */
  rateLimited(): void;
  /** The upstream's `ratelimit-remaining`, when it sends one. */
  rateLimitRemaining(remaining: number): void;
  /** A cached tag served without re-checking it. */
  staleServed(reason: StaleReason): void;
  /** Bytes of cached blobs sent to clients (counted as each response starts). */
  servedFromCache(bytes: number): void;
}

/** What a size budget reports. */
export interface BudgetObserver {
  usage(usedBytes: number, maxBytes: number): void;
  evicted(images: number, bytes: number): void;
}

export const unobserved: ProxyObserver = { upstreamRequest() {}, rateLimited() {}, rateLimitRemaining() {}, staleServed() {}, servedFromCache() {} };

/**
 * The pull-through caches' metrics. The `cache` label is the configured
 * prefix (or a budget's name): bounded by the configuration.
 */
export class ProxyMetrics {
  readonly #requests: Counter<'cache'>;
  readonly #rateLimited: Counter<'cache'>;
  readonly #remaining: Gauge<'cache'>;
  readonly #stale: Counter<'cache' | 'reason'>;
  readonly #served: Counter<'cache'>;
  readonly #used: Gauge<'budget'>;
  readonly #max: Gauge<'budget'>;
  readonly #evictedImages: Counter<'budget'>;
  readonly #evictedBytes: Counter<'budget'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.#requests = new Counter({ name: 'berth_proxy_upstream_requests_total', help: 'Requests a pull-through cache sent to its upstream.', labelNames: ['cache'], registers });
    this.#rateLimited = new Counter({ name: 'berth_proxy_upstream_rate_limited_total', help: 'Upstream answers of 429 Too Many Requests.', labelNames: ['cache'], registers });
    this.#remaining = new Gauge({
      name: 'berth_proxy_upstream_ratelimit_remaining',
      help: "The upstream's last ratelimit-remaining header.",
      labelNames: ['cache'],
      aggregator: 'min',
      registers,
    });
    this.#stale = new Counter({
      name: 'berth_proxy_stale_served_total',
      help: 'Cached tags served without re-checking the upstream, by reason: outage, rate_limited (429), near_limit.',
      labelNames: ['cache', 'reason'],
      registers,
    });
    this.#served = new Counter({ name: 'berth_proxy_cache_served_bytes_total', help: 'Bytes of cached blobs served to clients.', labelNames: ['cache'], registers });
    this.#used = new Gauge({
      name: 'berth_proxy_cache_bytes',
      help: 'Bytes a size budget counts (distinct blobs and manifests), as last measured.',
      labelNames: ['budget'],
      aggregator: 'max',
      registers,
    });
    this.#max = new Gauge({ name: 'berth_proxy_cache_max_bytes', help: "A size budget's maxBytes.", labelNames: ['budget'], aggregator: 'max', registers });
    this.#evictedImages = new Counter({ name: 'berth_proxy_evicted_images_total', help: 'Images evicted to keep a cache within its budget.', labelNames: ['budget'], registers });
    this.#evictedBytes = new Counter({ name: 'berth_proxy_evicted_bytes_total', help: 'Blob store bytes freed by eviction.', labelNames: ['budget'], registers });
  }

  cache(cache: string): ProxyObserver {
    const requests = this.#requests.labels(cache);
    const rateLimited = this.#rateLimited.labels(cache);
    const served = this.#served.labels(cache);
    requests.inc(0);
    rateLimited.inc(0);
    served.inc(0);
    for (const reason of ['outage', 'rate_limited', 'near_limit']) this.#stale.labels(cache, reason).inc(0);
    return {
      upstreamRequest: () => requests.inc(),
      rateLimited: () => rateLimited.inc(),
      rateLimitRemaining: (remaining) => this.#remaining.labels(cache).set(remaining),
      staleServed: (reason) => this.#stale.labels(cache, reason).inc(),
      servedFromCache: (bytes) => served.inc(bytes),
    };
  }

  budget(budget: string): BudgetObserver {
    this.#evictedImages.labels(budget).inc(0);
    this.#evictedBytes.labels(budget).inc(0);
    return {
      usage: (used, max) => {
        this.#used.labels(budget).set(used);
        this.#max.labels(budget).set(max);
      },
      evicted: (images, bytes) => {
        this.#evictedImages.labels(budget).inc(images);
        this.#evictedBytes.labels(budget).inc(bytes);
      },
    };
  }
}
