import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { PeerChannel } from '../../io/peers.ts';
import type { Logger } from '../../log.ts';
import { stampOf } from './archive-index.ts';
import type { ArchiveIndexCache } from './index-cache.ts';
import { archiveStem, namesReaching } from './name-rules.ts';

export interface ScannerOptions {
  root: string;
  /** Milliseconds between full rescans; 0 turns them off. */
  rescanInterval: number;
  /** Rescan soon after the kernel reports a change (not delivered for changes made on other NFS clients). */
  watch: boolean;
  /** With several workers: one scans and watches, and tells the others what it found. */
  shared?: SharedScans;
}

/** How the workers of one `berth serve` share one scanner. */
export interface SharedScans {
  /** Whether this worker is the one that scans. */
  scans: boolean;
  /** Every scan's result, from the scanning worker to the others. */
  results: PeerChannel<ScanResult>;
  /** The scanning worker's latest result, for a worker starting up (undefined if it does not answer). */
  latest(): Promise<ScanResult | undefined>;
}

/** What one scan found. */
export interface ScanResult {
  /** Names (relative to the prefix) reaching at least one readable archive. */
  names: ReadonlySet<string>;
  archives: number;
  failed: number;
}

/** Changes often come in bursts (a copy writes many times); one rescan follows the burst. */
const watchSettleMs = 300;

/**
 * Keeps the archive index warm and the catalog current: walks the whole
 * directory, indexes new and changed archives, forgets deleted ones. Runs
 * at start, every `rescanInterval`, and after watched changes. Requests do
 * not wait for it: they list and stat their own candidates.
 */
export class ArchiveScanner {
  readonly #options: ScannerOptions;
  readonly #cache: ArchiveIndexCache;
  readonly #logger: Logger;
  #current: Promise<ScanResult>;
  #last: ScanResult | undefined;
  #again = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #settle: NodeJS.Timeout | undefined;
  #watcher: FSWatcher | undefined;

  constructor(options: ScannerOptions, cache: ArchiveIndexCache, logger: Logger) {
    this.#options = options;
    this.#cache = cache;
    this.#logger = logger;
    const { shared } = options;
    if (shared !== undefined && !shared.scans) {
      // Another worker scans and watches: take its results; scan here only if it cannot say.
      this.#current = shared.latest().then((result) => result ?? this.#scan());
      shared.results.onMessage((result) => {
        this.#last = result;
        this.#current = Promise.resolve(result);
      });
      return;
    }
    this.#current = this.#scan();
    if (options.rescanInterval > 0) {
      this.#timer = setInterval(() => this.rescan(), options.rescanInterval);
      this.#timer.unref();
    }
    if (options.watch) this.#startWatching();
  }

  /** The latest complete scan (waiting for one in progress). */
  result(): Promise<ScanResult> {
    return this.#current;
  }

  /** Starts a scan now, or right after the one running; resolves when it is done. */
  rescan(): Promise<ScanResult> {
    if (this.#closed) return this.#current;
    if (this.#again) return this.#current;
    this.#again = true;
    this.#current = this.#current.then(() => {
      this.#again = false;
      return this.#scan();
    });
    return this.#current;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#settle);
    this.#watcher?.close();
    await this.#current.catch(() => undefined);
  }

  async #scan(): Promise<ScanResult> {
    const started = performance.now();
    const { root } = this.#options;
    const found = new Set<string>();
    const names = new Set<string>();
    let failed = 0;
    await Promise.all(
      (await walk(root)).map(async (path) => {
        const stats = await stat(path).catch(() => undefined);
        if (stats === undefined || !stats.isFile()) return;
        found.add(path);
        try {
          await this.#cache.get(path, stampOf(stats));
        } catch {
          failed++;
          return;
        }
        for (const name of namesReaching(relative(root, path).split(sep).join('/'))) names.add(name);
      }),
    );
    for (const path of this.#cache.paths()) if (!found.has(path)) this.#cache.purge(path);
    const result = { names, archives: found.size, failed };
    // Periodic and watch-triggered scans that change nothing stay out of the info log.
    const changed = this.#last === undefined || this.#last.archives !== result.archives || this.#last.failed !== failed || this.#last.names.size !== names.size;
    const fields = { directory: root, archives: found.size, failed, names: names.size, ms: Math.round(performance.now() - started) };
    if (changed) this.#logger.info(fields, 'archive directory scanned');
    else this.#logger.debug(fields, 'archive directory scanned');
    this.#last = result;
    if (this.#options.shared?.scans === true) this.#options.shared.results.post(result);
    return result;
  }

  #startWatching(): void {
    try {
      this.#watcher = watch(this.#options.root, { recursive: true, persistent: false }, () => {
        clearTimeout(this.#settle);
        this.#settle = setTimeout(() => void this.rescan(), watchSettleMs);
        this.#settle.unref();
      });
      this.#watcher.on('error', (error) => this.#stopWatching(error));
    } catch (error) {
      this.#stopWatching(error);
    }
  }

  #stopWatching(error: unknown): void {
    this.#logger.warn({ directory: this.#options.root, err: error }, 'cannot watch the archive directory; relying on periodic rescans');
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}

/** Every archive file under `root`; hidden directories (.snapshot, .git) are not entered, symlinked directories not followed. */
async function walk(root: string): Promise<string[]> {
  const files: string[] = [];
  const visit = async (directory: string): Promise<void> => {
    const entries = await readdir(directory, { withFileTypes: true }).catch(() => []);
    const subdirectories: string[] = [];
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(directory, entry.name);
      if (entry.isDirectory()) subdirectories.push(path);
      else if ((entry.isFile() || entry.isSymbolicLink()) && archiveStem(entry.name) !== undefined) files.push(path);
    }
    await Promise.all(subdirectories.map(visit));
  };
  await visit(root);
  return files;
}
