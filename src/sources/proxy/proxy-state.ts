import type { RegistryClient } from '../../client/registry-client.ts';
import type { Logger } from '../../log.ts';
import type { ManifestReferences, ManifestRecord } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import type { HostedContext } from '../../registry/hosted.ts';
import { uncounted, type CacheCounter } from '../../registry/cache-counter.ts';
import { BlobFill, type FillContext, type UpstreamBlobOpener } from './blob-fill.ts';
import { SingleFlight } from './single-flight.ts';

export interface ProxyOptions {
  tagTtlMs: number;
  failureBackoffMs: number;
  pushes: boolean;
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
  readonly #shutdown = new AbortController();
  readonly #checked = new Map<string, number>();
  #restingUntil = 0;

  constructor(options: {
    client: RegistryClient;
    hosted: HostedContext;
    proxy: ProxyOptions;
    logger: Logger;
    spoolDir: string;
    idleTimeoutMs: number;
    counters?: { manifest: CacheCounter; blob: CacheCounter };
  }) {
    this.client = options.client;
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
    });
  }

  get signal(): AbortSignal {
    return this.#shutdown.signal;
  }

  tagIsFresh(key: string): boolean {
    const checked = this.#checked.get(key);
    return checked !== undefined && Date.now() - checked < this.options.tagTtlMs;
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
    return Date.now() < this.#restingUntil;
  }

  /** Logs an upstream failure that cached content covers, and rests the upstream for a while. */
  noteFailure(error: unknown, context: Record<string, unknown>): void {
    this.#restingUntil = Date.now() + this.options.failureBackoffMs;
    // Expected while an upstream is down: one line, no stack.
    this.logger.warn({ upstream: this.upstream, reason: error instanceof Error ? error.message : String(error), ...context }, 'upstream unavailable; serving from the cache');
  }

  putUnchecked(repository: RepositoryName, record: ManifestRecord, references: ManifestReferences, tags: readonly Tag[]): Promise<void> {
    const put = this.hosted.meta.manifests.putUnchecked;
    if (put === undefined) throw new Error('the metadata store cannot hold cached manifests (ManifestIndex.putUnchecked)');
    return put.call(this.hosted.meta.manifests, repository, record, references, tags);
  }

  /** Stops fills in progress (their uploads are dropped; nothing half-stored is linked). */
  async close(): Promise<void> {
    this.#shutdown.abort(new Error('the registry is shutting down'));
    await this.fills.settled();
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
