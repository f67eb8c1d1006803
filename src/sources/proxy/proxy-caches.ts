import type { BlobStore } from '../../blobs/blob-store.ts';
import type { Config } from '../../config/schema.ts';
import type { ProxyRepositoryConfig } from '../../config/repositories.ts';
import type { Logger } from '../../log.ts';
import type { Peers } from '../../io/peers.ts';
import type { UpstreamNews } from './rate-limit.ts';
import type { ChangeLog } from '../../meta/change-log.ts';
import type { MetaStore } from '../../meta/meta-store.ts';
import type { OperationsStore } from '../../meta/operations-store.ts';
import type { ProxyMetrics } from '../../metrics/proxy-metrics.ts';
import type { HostedContext } from '../../registry/hosted.ts';
import type { CacheCounter } from '../../registry/cache-metrics.ts';
import { configuredBudgets } from './budget-scopes.ts';
import { CacheBudgets, type BudgetUsage } from './cache-budget.ts';
import { CacheWarmer } from './prewarm.ts';
import { ProxySource } from './proxy-source.ts';

export interface ProxyCachesDependencies {
  config: Config;
  operations: OperationsStore;
  meta: MetaStore;
  /** The blob store as the driver gives it (eviction deletes what it condemned). */
  blobs: BlobStore;
  hosted: HostedContext;
  logger: Logger;
  metrics: ProxyMetrics;
  counters: { manifest: CacheCounter; blob: CacheCounter };
  spoolDir: string;
  flushPulls: () => Promise<void>;
  changes?: ChangeLog;
  /** The other workers: each cache tells them when its upstream failed or rate-limited it. */
  peers?: Peers;
}

/** Where the periodic work and the usage report go (the Operations object). */
export interface ProxyCacheHost {
  every(name: string, interval: number, task: (signal: AbortSignal) => Promise<void>): void;
  reportCacheUsage(usage: () => Promise<BudgetUsage[]>): void;
}

/**
 * Every pull-through cache of a process, with what they share: size
 * budgets (evicting across caches when one budget covers them all) and
 * the pre-warming schedules.
 */
export class ProxyCaches {
  readonly budgets: CacheBudgets | undefined;
  readonly warmers = new Map<string, CacheWarmer>();
  readonly #deps: ProxyCachesDependencies;
  readonly #sources: ProxySource[] = [];

  constructor(dependencies: ProxyCachesDependencies) {
    this.#deps = dependencies;
    const budgets = configuredBudgets(dependencies.config);
    this.budgets =
      budgets.length === 0
        ? undefined
        : new CacheBudgets(budgets, {
            operations: dependencies.operations,
            meta: dependencies.meta,
            blobs: dependencies.blobs,
            logger: dependencies.logger.child({ task: 'cache-budgets' }),
            flushPulls: dependencies.flushPulls,
            observer: (name) => dependencies.metrics.budget(name),
            ...(dependencies.changes === undefined ? {} : { changes: dependencies.changes }),
          });
  }

  source(entry: ProxyRepositoryConfig): ProxySource {
    const { hosted, logger, spoolDir, counters, metrics, operations, peers } = this.#deps;
    const budgets = this.budgets;
    const source = new ProxySource(entry, {
      hosted,
      logger,
      spoolDir,
      counters,
      observer: metrics.cache(entry.prefix),
      ...(peers === undefined || peers.count === 1 ? {} : { news: peers.channel<UpstreamNews>(`proxy:${entry.prefix}`) }),
      ...(budgets === undefined ? {} : { onStored: () => budgets.poke() }),
    });
    if (entry.sync !== undefined && entry.sync.interval > 0) {
      this.warmers.set(entry.prefix, new CacheWarmer(source, entry.sync, operations.leases, logger));
    }
    this.#sources.push(source);
    return source;
  }

  /** Hands the periodic work (budget checks, syncs) and the usage report to the host. */
  register(host: ProxyCacheHost): void {
    const budgets = this.budgets;
    if (budgets !== undefined) {
      host.reportCacheUsage(() => budgets.usage());
      host.every('cache budgets', this.#deps.config.proxyCache.evictionInterval, async (signal) => {
        await budgets.enforce(signal);
      });
    }
    for (const [prefix, warmer] of this.warmers) {
      const entry = this.#deps.config.repositories.find((each) => each.kind === 'proxy' && each.prefix === prefix);
      const interval = entry?.kind === 'proxy' ? (entry.sync?.interval ?? 0) : 0;
      host.every(`cache sync ${prefix}`, interval, async (signal) => {
        await warmer.run(signal);
      });
    }
  }

  /** Waits for background caching (referrers) of every cache; for tests and pre-warming. */
  async idle(): Promise<void> {
    await Promise.all(this.#sources.map((source) => source.state.idle()));
  }

  async close(): Promise<void> {
    await this.budgets?.close();
  }
}
