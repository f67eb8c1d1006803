import type { RegistryClient } from '../../client/registry-client.ts';
import type { Logger } from '../../log.ts';
import type { ManifestReferences, ManifestRecord } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import type { HostedContext } from '../../registry/hosted.ts';
import { uncounted, type CacheCounter } from '../../registry/cache-metrics.ts';
import { isUpstreamError } from '../../client/errors.ts';
import { unobserved, type ProxyObserver, type StaleReason } from '../../metrics/proxy-metrics.ts';
import { BlobFill, type FillContext, type UpstreamBlobOpener } from './blob-fill.ts';
import { UpstreamRateLimit, type UpstreamNews } from './rate-limit.ts';
import type { PeerChannel } from '../../io/peers.ts';
import { SingleFlight } from './single-flight.ts';

export interface ProxyOptions {
  tagTtlMs: number;
  failureBackoffMs: number;
  pushes: boolean;
  /** Cache referrers (signatures, SBOMs, attestations) with each manifest. */
  referrers: boolean;
  /** Fraction of the upstream's rate limit kept for uncached content. */
  rateLimitReserve: number;
}

/** Tag check times kept at most; the oldest are forgotten (and re-checked) first. */
const maxRememberedTags = 100_000;

/**
 * What every repository of one cache shares: the upstream client, hosted
 * storage, fills and single-flight keys in progress, when each tag was
 * last checked, and whether the upstream failed a moment ago.
 */
export class ProxyState {
  readonly client: RegistryClient;
  readonly hosted: HostedContext;
  readonly options: ProxyOptions;
  readonly logger: Logger;
  readonly flights = new SingleFlight();
  /** Hits: served from the cache (a tag revalidated by HEAD counts); misses: fetched from upstream. */
  readonly counters: { manifest: CacheCounter; blob: CacheCounter };
  readonly fills: BlobFills;
  /** How messages name the upstream. */
  readonly upstream: string;
  readonly rateLimit: UpstreamRateLimit;
  readonly observer: ProxyObserver;
  readonly #shutdown = new AbortController();
  readonly #checked = new Map<string, number>();
  readonly #background = new Set<Promise<unknown>>();
  readonly #onStored: () => void;
  #restingUntil = 0;
  readonly #news: PeerChannel<UpstreamNews> | undefined;

  constructor(options: {
    client: RegistryClient;
    hosted: HostedContext;
    proxy: ProxyOptions;
    logger: Logger;
    spoolDir: string;
    idleTimeoutMs: number;
    counters?: { manifest: CacheCounter; blob: CacheCounter };
    observer?: ProxyObserver;
    /** Called when a blob was stored (a size budget may want checking). */
    onStored?: () => void;
    /** The other workers' copies of this cache: readings, 429s and failures are told to all. */
    news?: PeerChannel<UpstreamNews>;
  }) {
    this.client = options.client;
    this.rateLimit = new UpstreamRateLimit(options.proxy.rateLimitReserve);
    this.#news = options.news;
    options.news?.onMessage((news) => {
      if (news.kind === 'resting') this.#restingUntil = Math.max(this.#restingUntil, news.until);
      else this.rateLimit.learn(news);
    });
    this.observer = options.observer ?? unobserved;
    this.#onStored = options.onStored ?? (() => undefined);
    this.counters = options.counters ?? { manifest: uncounted, blob: uncounted };
    this.hosted = options.hosted;
    this.options = options.proxy;
    this.logger = options.logger;
    this.upstream = options.client.baseUrl;
    this.fills = new BlobFills({
      blobs: options.hosted.blobs,
      meta: options.hosted.meta,
      spoolDir: options.spoolDir,
      logger: options.logger,
      idleTimeoutMs: options.idleTimeoutMs,
      signal: this.#shutdown.signal,
      onStored: () => this.#onStored(),
    });
  }

  /** Every upstream answer: counted, and its rate-limit headers read. */
  sawResponse(response: Response, sentAt: number): void {
    this.observer.upstreamRequest();
    const remaining = this.rateLimit.observe(response.headers, sentAt);
    if (remaining !== undefined) {
      this.observer.rateLimitRemaining(remaining);
      const reading = this.rateLimit.reading();
      if (reading !== undefined) this.#news?.post(reading);
    }
    if (response.status === 429) this.observer.rateLimited();
  }

  /**
   * Why a cached tag should be served without asking the upstream now:
   * a recent failure, a 429's Retry-After, or a rate limit nearly used up.
   */
  holdBack(): StaleReason | undefined {
    if (this.rateLimit.blocked()) return 'rate_limited';
    if (this.resting()) return 'outage';
    if (this.rateLimit.nearLimit()) return 'near_limit';
    return undefined;
  }

  /** Work that outlives the request that started it (caching referrers); awaited on close. */
  inBackground(work: () => Promise<unknown>, what: Record<string, unknown>): void {
    const running = work().catch((error: unknown) => {
      if (!this.#shutdown.signal.aborted) this.logger.warn({ err: error, ...what }, 'caching in the background failed');
    });
    this.#background.add(running);
    void running.finally(() => this.#background.delete(running));
  }

  /** Resolves when the background work started so far has finished (tests, pre-warming). */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background]);
  }

  get signal(): AbortSignal {
    return this.#shutdown.signal;
  }

  tagIsFresh(key: string): boolean {
    const checked = this.#checked.get(key);
    return checked !== undefined && Date.now() - checked < this.options.tagTtlMs;
  }

  /** When the tag (`name:tag`) was last checked upstream by this process; undefined when not remembered. */
  tagCheckedAt(key: string): Date | undefined {
    const checked = this.#checked.get(key);
    return checked === undefined ? undefined : new Date(checked);
  }

  tagChecked(key: string): void {
    this.#checked.delete(key);
    this.#checked.set(key, Date.now());
    if (this.#checked.size > maxRememberedTags) {
      const oldest = this.#checked.keys().next().value;
      if (oldest !== undefined) this.#checked.delete(oldest);
    }
  }

  /** True for a short while after the upstream failed: cached content is served without asking. */
  resting(): boolean {
    return Date.now() < this.#restingUntil || this.rateLimit.blocked();
  }

  /** Records an upstream failure: a 429 blocks asking until its Retry-After, anything else rests the upstream a while. */
  noteFailure(error: unknown): void {
    if (isUpstreamError(error) && error.status === 429) {
      this.rateLimit.refused(error.retryAfter, this.options.failureBackoffMs);
      this.#news?.post(this.rateLimit.block());
    } else {
      this.#restingUntil = Date.now() + this.options.failureBackoffMs;
      this.#news?.post({ kind: 'resting', until: this.#restingUntil });
    }
  }

  /** Logs cached content served because the upstream failed; a cached tag (`tag: true`) is counted too. */
  servedStale(error: unknown, context: Record<string, unknown>, tag = false): void {
    this.noteFailure(error);
    if (tag) this.observer.staleServed(isUpstreamError(error) && error.status === 429 ? 'rate_limited' : 'outage');
    // Expected while an upstream is down: one line, no stack.
    this.logger.warn({ upstream: this.upstream, reason: error instanceof Error ? error.message : String(error), ...context }, 'upstream unavailable; serving from the cache');
  }

  /** Stores a manifest ahead of the blobs and children it names, which are fetched on demand. */
  putCached(repository: RepositoryName, record: ManifestRecord, references: ManifestReferences, tags: readonly Tag[]): Promise<void> {
    return this.hosted.meta.manifests.put(repository, record, references, tags, { referencesPending: true });
  }

  /** Stops fills in progress (their uploads are dropped; nothing half-stored is linked). */
  async close(): Promise<void> {
    this.#shutdown.abort(new Error('the registry is shutting down'));
    await this.fills.settled();
    await Promise.allSettled([...this.#background]);
  }
}

/** Blob fills in progress, one per digest for the whole cache. */
export class BlobFills {
  readonly #context: FillContext;
  readonly #running = new Map<Digest, BlobFill>();

  constructor(context: FillContext) {
    this.#context = context;
  }

  get(digest: Digest): BlobFill | undefined {
    return this.#running.get(digest);
  }

  start(digest: Digest, repository: RepositoryName, upstream: UpstreamBlobOpener): BlobFill {
    const running = this.#running.get(digest);
    if (running !== undefined) {
      running.repositories.add(repository);
      return running;
    }
    const fill = new BlobFill(digest, repository, this.#context, upstream);
    this.#running.set(digest, fill);
    fill.done.then(
      () => this.#running.delete(digest),
      () => this.#running.delete(digest),
    );
    return fill;
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.#running.values()].map((fill) => fill.done));
  }
}
