import type { Logger } from '../../log.ts';
import type { Digest } from '../../oci/digest.ts';
import { uncounted, type CacheCounter } from '../../registry/cache-metrics.ts';
import { sameStamp, type ArchiveIndex, type ArchiveStamp } from './archive-index.ts';

interface CachedIndex {
  /** The version asked for; the index itself carries the version actually read. */
  stamp: ArchiveStamp;
  result: Promise<ArchiveIndex>;
}

/**
 * Indexes of archive files, kept per path for as long as the file keeps
 * its stamp (size, mtime, inode). A failure is cached too, so a damaged
 * archive is read and warned about once per version, not on every request.
 * At most `concurrency` archives are indexed at a time.
 */
export class ArchiveIndexCache {
  readonly #entries = new Map<string, CachedIndex>();
  readonly #indexer: (path: string) => Promise<ArchiveIndex>;
  readonly #logger: Logger;
  readonly #concurrency: number;
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  readonly #counter: CacheCounter;

  constructor(indexer: (path: string) => Promise<ArchiveIndex>, logger: Logger, concurrency = 4, counter: CacheCounter = uncounted) {
    this.#indexer = indexer;
    this.#logger = logger;
    this.#concurrency = concurrency;
    this.#counter = counter;
  }

  /** The index of `path` as of `stamp`; read again when the cache holds another version. */
  get(path: string, stamp: ArchiveStamp): Promise<ArchiveIndex> {
    const cached = this.#entries.get(path);
    if (cached !== undefined && sameStamp(cached.stamp, stamp)) {
      this.#counter.hit();
      return cached.result;
    }
    this.#counter.miss();
    const entry: CachedIndex = { stamp, result: this.#index(path, cached === undefined ? 'indexed' : 're-indexed changed') };
    this.#entries.set(path, entry);
    // The file may have changed again between the caller's stat and the read:
    // remember the version actually indexed.
    entry.result.then((index) => (entry.stamp = index.stamp)).catch(() => undefined);
    return entry.result;
  }

  /** Forgets an archive (deleted, or its blobs went missing from the store). */
  purge(path: string): void {
    this.#entries.delete(path);
  }

  paths(): string[] {
    return [...this.#entries.keys()];
  }

  /** Blobs the cached indexes serve from the BlobStore (extracted from gzip archives). */
  async *storedBlobs(): AsyncIterable<Digest> {
    for (const entry of [...this.#entries.values()]) {
      const index = await entry.result.catch(() => undefined);
      for (const [digest, location] of index?.blobs ?? []) {
        if (location.kind === 'store') yield digest;
      }
    }
  }

  async #index(path: string, what: string): Promise<ArchiveIndex> {
    await this.#slot();
    try {
      const started = performance.now();
      const index = await this.#indexer(path);
      this.#logger.debug({ archive: path, format: index.format, tags: index.tags.size, blobs: index.blobs.size, ms: Math.round(performance.now() - started) }, `${what} archive`);
      return index;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        this.purge(path);
      } else {
        this.#logger.warn({ archive: path, err: error }, `skipping archive ${path}: ${(error as Error).message}`);
      }
      throw error;
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#running--;
      else next();
    }
  }

  /** Waits for one of the indexing slots; a finishing indexer hands its slot straight to the next waiter. */
  async #slot(): Promise<void> {
    if (this.#running < this.#concurrency) {
      this.#running++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }
}
