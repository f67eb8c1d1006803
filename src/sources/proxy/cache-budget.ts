import type { BlobStore } from '../../blobs/blob-store.ts';
import { collectorLease } from '../../gc/blob-guard.ts';
import type { Logger } from '../../log.ts';
import { withChange, type ChangeLog } from '../../meta/change-log.ts';
import type { MetaStore } from '../../meta/meta-store.ts';
import type { BlobLink, OperationsStore, RepositoryScope, SizedBlob } from '../../meta/operations-store.ts';
import type { BudgetObserver } from '../../metrics/proxy-metrics.ts';
import type { Digest } from '../../oci/digest.ts';
import { parseManifest } from '../../oci/manifest.ts';
import { scopeMatcher } from '../../policy/globs.ts';
import { imagesOf, leastRecentlyUsed, type CachedImage } from './eviction-plan.ts';

/** A size budget: the caches its scope covers hold at most `maxBytes`. */
export interface Budget {
  /** A cache's prefix, or `all` for the budget every cache shares. */
  name: string;
  scope: RepositoryScope;
  maxBytes: number;
}

export interface BudgetUsage {
  name: string;
  usedBytes: number;
  maxBytes: number;
}

export interface EvictionReport {
  budget: string;
  images: number;
  bytesFreed: number;
  usedBytes: number;
}

export interface CacheBudgetsDependencies {
  operations: OperationsStore;
  meta: MetaStore;
  /** The blob store as the driver gives it: eviction deletes the bytes it condemned. */
  blobs: BlobStore;
  logger: Logger;
  /** Writes pull times still buffered, so the plan sees the latest pulls. */
  flushPulls: () => Promise<void>;
  /** Events of the tags and manifests eviction deletes, committed with each deletion. */
  changes?: ChangeLog;
  observer: (budget: string) => BudgetObserver;
}

/** After a fill, budgets are checked at most this often. */
const settleMs = 1000;

/**
 * Keeps pull-through caches within their size budgets by evicting whole
 * images, least recently pulled first, through garbage collection's safe
 * path: under the collector's lease, tags and manifests are deleted only
 * when re-checked in their transaction (nothing pushed or re-cached since
 * the plan), links only while still unreferenced, and blobs only when no
 * repository at all links them (bytes hosted repositories use stay) and
 * nobody touched them since the plan; condemned, deleted, buried.
 */
export class CacheBudgets {
  readonly budgets: readonly Budget[];
  readonly #deps: CacheBudgetsDependencies;
  readonly #observers: Map<string, BudgetObserver>;
  #running: Promise<EvictionReport[]> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(budgets: readonly Budget[], dependencies: CacheBudgetsDependencies) {
    this.budgets = budgets;
    this.#deps = dependencies;
    this.#observers = new Map(budgets.map((budget) => [budget.name, dependencies.observer(budget.name)]));
  }

  /** A blob was stored: check the budgets soon (once for many fills). */
  poke(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.enforce().catch((error: unknown) => this.#deps.logger.warn({ err: error }, 'enforcing cache budgets failed'));
    }, settleMs);
    this.#timer.unref();
  }

  /** What each budget counts now. */
  async usage(): Promise<BudgetUsage[]> {
    return Promise.all(
      this.budgets.map(async (budget) => {
        const { bytes } = await this.#deps.operations.usage.usage(budget.scope);
        this.#observers.get(budget.name)?.usage(bytes, budget.maxBytes);
        return { name: budget.name, usedBytes: bytes, maxBytes: budget.maxBytes };
      }),
    );
  }

  /** Evicts until every budget holds; one pass at a time (a call during a pass runs another after it). */
  async enforce(signal?: AbortSignal): Promise<EvictionReport[]> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      const reports: EvictionReport[] = [];
      do {
        this.#again = false;
        for (const budget of this.budgets) {
          if (signal?.aborted === true || this.#closed) break;
          const report = await this.#enforce(budget, signal);
          if (report !== undefined) reports.push(report);
        }
      } while (this.#again && signal?.aborted !== true && !this.#closed);
      return reports;
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  async #enforce(budget: Budget, signal: AbortSignal | undefined): Promise<EvictionReport | undefined> {
    const { operations, logger } = this.#deps;
    const observer = this.#observers.get(budget.name);
    let used = (await operations.usage.usage(budget.scope)).bytes;
    observer?.usage(used, budget.maxBytes);
    if (used <= budget.maxBytes) return undefined;
    // The collector's lease: one deleter at a time, and tombstones stay this pass's to bury.
    const lease = await operations.leases.acquire(collectorLease);
    if (lease === undefined) {
      logger.info({ budget: budget.name }, 'cache over budget; garbage collection is running, eviction waits for the next check');
      return undefined;
    }
    const report: EvictionReport = { budget: budget.name, images: 0, bytesFreed: 0, usedBytes: used };
    try {
      await this.#deps.flushPulls();
      const planAt = new Date();
      // Layers no manifest of their repository uses any more (a fill that finished after its image went) go first.
      const swept = await this.#sweepUnreferenced(budget.scope, planAt);
      if (swept > 0) {
        report.bytesFreed += swept;
        used = (await operations.usage.usage(budget.scope)).bytes;
      }
      const images = leastRecentlyUsed(await this.#images(budget.scope));
      for (const image of images) {
        if (used <= budget.maxBytes || signal?.aborted === true || lease.signal.aborted) break;
        const freed = await this.#evict(image, planAt);
        if (freed === undefined) continue;
        report.images += 1;
        report.bytesFreed += freed;
        used = (await operations.usage.usage(budget.scope)).bytes;
      }
    } finally {
      await lease.release();
    }
    report.usedBytes = used;
    observer?.usage(used, budget.maxBytes);
    observer?.evicted(report.images, report.bytesFreed);
    logger.info({ ...report, maxBytes: budget.maxBytes }, 'evicted least recently pulled images to keep the cache within its budget');
    return report;
  }

  async #images(scope: RepositoryScope): Promise<CachedImage[]> {
    const { operations } = this.#deps;
    const images: CachedImage[] = [];
    for (const repository of await operations.usage.repositories(scope)) {
      const [contents, pulls] = await Promise.all([operations.namespace.contents(repository), operations.pulls.lastPulls(repository)]);
      images.push(...imagesOf(repository, contents, pulls));
    }
    return images;
  }

  /**
   * Deletes one image: its tags (unless moved since the plan), its
   * manifests (each re-checked unreachable), then the links and blobs
   * only it used. Resolves to the bytes freed, or undefined when the
   * image was in use again and stays.
   */
  async #evict(image: CachedImage, planAt: Date): Promise<number | undefined> {
    const { operations, meta, changes } = this.#deps;
    const { namespace } = operations;
    const { repository } = image;
    for (const { tag, digest } of image.tags) {
      const change = { kind: 'tag-deleted', repository, tag, digest, reason: 'eviction' } as const;
      await withChange(
        changes,
        change,
        (options) => namespace.deleteTag(repository, tag, digest, planAt, options),
        (deleted) => deleted,
      );
    }
    const blobs = new Set<Digest>();
    for (const digest of image.members) {
      const record = await meta.manifests.get(repository, { kind: 'digest', digest });
      if (record !== undefined) for (const blob of parseManifest(record.bytes, record.mediaType).blobs) blobs.add(blob);
    }
    // Parents before children: a child becomes unreachable once its index is gone.
    let remaining = [...image.members];
    for (let progress = true; progress && remaining.length > 0; ) {
      progress = false;
      const left: Digest[] = [];
      for (const digest of remaining) {
        const change = { kind: 'manifest-deleted', repository, digest, reason: 'eviction' } as const;
        const size = await withChange(
          changes,
          change,
          (options) => namespace.deleteUnreachable({ repository, digest }, planAt, options),
          (freed) => freed !== undefined,
        );
        if (size === undefined) left.push(digest);
        else progress = true;
      }
      remaining = left;
    }
    if (remaining.includes(image.root)) return undefined;
    return this.#release(
      [...blobs].map((digest) => ({ repository, digest })),
      planAt,
    );
  }

  /** Unreferenced links of the budget's repositories, older than the plan: released. */
  async #sweepUnreferenced(scope: RepositoryScope, planAt: Date): Promise<number> {
    const inScope = scopeMatcher(scope);
    let freed = 0;
    let cursor: string | undefined;
    do {
      const batch = await this.#deps.operations.namespace.unreferencedLinks(planAt, cursor, 500);
      const links = batch.items.filter((link) => inScope(link.repository));
      if (links.length > 0) freed += await this.#release(links, planAt);
      cursor = batch.cursor;
    } while (cursor !== undefined);
    return freed;
  }

  /**
   * Removes links (re-checked: still unreferenced, not touched since the
   * plan), then condemns the blobs no repository links any more, deletes
   * their bytes and buries the tombstones. Resolves to the bytes freed.
   */
  async #release(links: readonly BlobLink[], planAt: Date): Promise<number> {
    const { operations } = this.#deps;
    const unlinked = await operations.namespace.unlink(links, planAt);
    if (unlinked.length === 0) return 0;
    const condemned = await operations.blobs.condemn(
      unlinked.map((link): SizedBlob => ({ digest: link.digest, size: 0 })),
      planAt,
    );
    for (const blob of condemned) await this.#deps.blobs.delete(blob.digest);
    await operations.blobs.bury(condemned.map((blob) => blob.digest));
    return condemned.reduce((total, blob) => total + blob.size, 0);
  }
}
