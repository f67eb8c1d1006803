import type { Logger } from '../../log.ts';
import type { Leases } from '../../meta/operations-store.ts';
import type { ManifestRecord } from '../../meta/meta-store.ts';
import { parseManifest } from '../../oci/manifest.ts';
import { parseRepositoryName, type Tag } from '../../oci/names.ts';
import { tagMatcher } from '../../policy/globs.ts';
import type { ProxySource } from './proxy-source.ts';
import type { ProxyRepository } from './proxy-repository.ts';
import { cacheReferrers } from './referrer-cache.ts';

export interface WarmSettings {
  repositories: readonly { name: string; tags: readonly string[] }[];
}

export interface WarmReport {
  repositories: number;
  images: number;
  failed: number;
  durationMs: number;
}

/** An index of an index of … is rare; deeper nesting is left to pulls. */
const maxDepth = 4;

/**
 * Pre-warming: keeps configured repositories and tag patterns of one
 * cache synced from its upstream — every matching tag re-checked, and
 * what it names (index children, blobs, referrers) cached — so that the
 * first pull is warm and the images survive an upstream outage. One
 * replica at a time (a lease per cache); nothing it does counts as a pull.
 */
export class CacheWarmer {
  readonly #source: ProxySource;
  readonly #settings: WarmSettings;
  readonly #leases: Leases;
  readonly #logger: Logger;

  constructor(source: ProxySource, settings: WarmSettings, leases: Leases, logger: Logger) {
    this.#source = source;
    this.#settings = settings;
    this.#leases = leases;
    this.#logger = logger.child({ proxy: source.prefix, task: 'sync' });
  }

  /** One sync; undefined when another replica is syncing this cache. */
  async run(signal?: AbortSignal): Promise<WarmReport | undefined> {
    const lease = await this.#leases.acquire(`proxy-sync:${this.#source.prefix}`);
    if (lease === undefined) return undefined;
    const started = Date.now();
    const report: WarmReport = { repositories: 0, images: 0, failed: 0, durationMs: 0 };
    try {
      const stop = signal === undefined ? lease.signal : AbortSignal.any([signal, lease.signal]);
      for (const entry of this.#settings.repositories) {
        if (stop.aborted) break;
        report.repositories += 1;
        await this.#syncRepository(entry, report, stop);
      }
    } finally {
      await lease.release();
    }
    report.durationMs = Date.now() - started;
    this.#logger.info(report, 'cache sync finished');
    return report;
  }

  async #syncRepository(entry: WarmSettings['repositories'][number], report: WarmReport, signal: AbortSignal): Promise<void> {
    const repository = this.#source.repository(parseRepositoryName(`${this.#source.prefix}${entry.name}`));
    const state = this.#source.state;
    let tags: Tag[];
    try {
      tags = (await state.client.allTags(repository.upstreamName, signal)).filter(tagMatcher(entry.tags));
    } catch (error) {
      report.failed += 1;
      this.#logger.warn({ err: error, repository: entry.name }, "cache sync could not list the upstream's tags");
      return;
    }
    for (const tag of tags) {
      if (signal.aborted) return;
      try {
        const record = await repository.cacheManifest({ kind: 'tag', tag }, true);
        await warmImage(repository, record, 0);
        if (state.options.referrers) await cacheReferrers(repository, state, record.digest);
        report.images += 1;
      } catch (error) {
        report.failed += 1;
        this.#logger.warn({ err: error, repository: entry.name, tag }, 'cache sync could not cache a tag');
      }
    }
  }
}

/** Every blob of an image, and every child of an index with its blobs. */
async function warmImage(repository: ProxyRepository, record: ManifestRecord, depth: number): Promise<void> {
  const parsed = parseManifest(record.bytes, record.mediaType);
  for (const blob of parsed.blobs) await repository.cacheBlob(blob);
  if (depth >= maxDepth) return;
  for (const child of parsed.children) await warmImage(repository, await repository.cacheManifest({ kind: 'digest', digest: child }), depth + 1);
}
