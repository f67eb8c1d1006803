import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { alone, type Peers } from '../../io/peers.ts';
import type { Logger } from '../../log.ts';
import type { Page } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import { isRepositoryName, type RepositoryName } from '../../oci/names.ts';
import type { CacheCounter } from '../../registry/cache-metrics.ts';
import type { Repository, RepositorySource } from '../../registry/repository.ts';
import { compareNames } from '../../registry/router.ts';
import { indexArchive } from './archive-index.ts';
import { ArchiveRepository } from './archive-repository.ts';
import { ArchiveIndexCache } from './index-cache.ts';
import { DirectoryListings, NameArchives } from './name-rules.ts';
import { ArchiveScanner, type ScanResult, type SharedScans } from './scanner.ts';

/** How long a worker starting beside the leader waits for the leader's first scan before scanning itself. */
const firstScanWaitMs = 60_000;

export interface ArchiveSourceOptions {
  /** Names starting with this prefix are served; the rules apply to the rest of the name. */
  prefix: string;
  directory: string;
  /** Milliseconds between full rescans of the directory; 0 turns them off. */
  rescanInterval: number;
  watch: boolean;
  maxManifestBytes: number;
  /** Counts index lookups served from memory (hits) and archives read again (misses). */
  indexCounter?: CacheCounter;
}

/**
 * Repositories read straight from OCI image layouts and Docker archives in
 * a directory (see docs/archives.md). Read-only: the repositories have no
 * writer, so pushes and deletes answer UNSUPPORTED.
 */
export class ArchiveSource implements RepositorySource {
  readonly #prefix: string;
  readonly #root: string;
  readonly #cache: ArchiveIndexCache;
  readonly #scanner: ArchiveScanner;
  readonly #store: BlobStore;
  readonly #listings = new DirectoryListings();

  constructor(options: ArchiveSourceOptions, store: BlobStore, logger: Logger, peers: Peers = alone()) {
    this.#prefix = options.prefix;
    this.#root = resolve(options.directory);
    this.#store = store;
    const log = logger.child({ source: 'archive', prefix: options.prefix });
    this.#cache = new ArchiveIndexCache((path) => indexArchive(path, store, { maxManifestBytes: options.maxManifestBytes }), log, 4, options.indexCounter);
    this.#scanner = new ArchiveScanner(
      { root: this.#root, rescanInterval: options.rescanInterval, watch: options.watch, ...(peers.count > 1 ? { shared: this.#sharedScans(peers) } : {}) },
      this.#cache,
      log,
    );
    stat(this.#root).then(
      (stats) => {
        if (!stats.isDirectory()) log.warn({ directory: this.#root }, 'the archive directory is not a directory; nothing is served from it');
      },
      () => log.warn({ directory: this.#root }, 'the archive directory does not exist (yet); nothing is served from it until it does'),
    );
  }

  async open(name: RepositoryName): Promise<Repository> {
    const relative = name.slice(this.#prefix.length);
    const archives = relative === '' ? undefined : await NameArchives.list(this.#root, relative, this.#listings);
    if (archives === undefined || archives.isEmpty) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not known: no archive for it in the archive directory`, { detail: { name } });
    }
    return new ArchiveRepository(name, archives, { cache: this.#cache, store: this.#store });
  }

  async catalog(page: Page): Promise<RepositoryName[]> {
    const { names } = await this.scanned();
    const full = [...names]
      .map((name) => this.#prefix + name)
      .filter(isRepositoryName)
      .sort(compareNames);
    const after = page.last === undefined ? full : full.filter((name) => name > (page.last as string));
    return page.limit === undefined ? after : after.slice(0, page.limit);
  }

  /** The latest scan of the directory, waiting for one in progress (the first starts with the source). */
  scanned(): Promise<ScanResult> {
    return this.#scanner.result();
  }

  /** Scans the directory now instead of waiting for a change or the next periodic rescan. */
  rescan(): Promise<ScanResult> {
    return this.#scanner.rescan();
  }

  /**
   * Blobs extracted from gzip archives into the BlobStore, which no
   * MetaStore link keeps: every archive is indexed (the first scan) before
   * they are listed, so that a collector run from `berth gc` sees them too.
   */
  async *retainedBlobs(): AsyncIterable<Digest> {
    await this.scanned();
    yield* this.#cache.storedBlobs();
  }

  close(): Promise<void> {
    return this.#scanner.close();
  }

  /**
   * The leader scans and watches the directory; the other workers take its
   * results. A worker starting while the leader's first scan still runs waits
   * for that scan (up to a minute) instead of indexing every archive again.
   */
  #sharedScans(peers: Peers): SharedScans {
    const topic = `archive-scan:${this.#root}`;
    if (peers.leader) peers.answer(topic, () => this.#scanner.result());
    return {
      scans: peers.leader,
      results: peers.channel<ScanResult>(topic),
      latest: () => peers.askLeader<ScanResult>(topic, firstScanWaitMs),
    };
  }
}
