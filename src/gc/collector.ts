import { setTimeout as rest, setImmediate as yieldToRequests } from 'node:timers/promises';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { Logger } from '../log.ts';
import { withChange, type ChangeLog } from '../meta/change-log.ts';
import type { MetaStore } from '../meta/meta-store.ts';
import type { Batch, OperationsStore, SizedBlob } from '../meta/operations-store.ts';
import type { Digest } from '../oci/digest.ts';
import { collectorLease } from './blob-guard.ts';
import { removeExpiredUploads, type ExpiredUploads } from './expired-uploads.ts';

export interface CollectorSettings {
  gracePeriod: number;
  unreferencedLinks: boolean;
  untaggedManifests: boolean;
  orphans: boolean;
  uploadExpiry: number;
  batchSize: number;
  /**
   * The share of its time a pass may work (0–1]: after each batch it rests
   * long enough that work is at most this share, so that requests, pushes
   * and the database writer lock stay with the registry. 1 runs flat out.
   */
  duty: number;
}

export interface CollectorDependencies {
  /** The store itself, not guarded: the collector deletes bytes only of what it condemned. */
  blobs: BlobStore;
  meta: MetaStore;
  operations: OperationsStore;
  /** Blobs other kinds of repository keep without links (RepositoryRouter.retainedBlobs). */
  retained: () => AsyncIterable<Digest>;
  /** Aborts the store's multipart uploads started before the cutoff (S3). */
  sweepMultipart?: (cutoff: Date) => Promise<number>;
  logger: Logger;
  /** Events of each manifest the pass deletes, committed with the deletion. */
  changes?: ChangeLog;
  /** Test hook: runs after a batch is condemned, before its bytes are deleted. */
  afterCondemn?: (blobs: readonly SizedBlob[]) => Promise<void>;
  /** Milliseconds since the epoch when a pass starts (default `Date.now`); tests run a pass "later". */
  clock?: () => number;
}

export interface GcReport {
  dryRun: boolean;
  startedAt: Date;
  durationMs: number;
  /** Everything created or last used before this may have gone. */
  cutoff: Date;
  uploads: ExpiredUploads;
  manifestsDeleted: number;
  linksRemoved: number;
  blobsDeleted: number;
  /** Bytes of blob store content deleted (blobs and orphans). */
  bytesFreed: number;
  /** Bytes in the blob store that no metadata knew (a crash between write and link). */
  orphansDeleted: number;
  /** Deletions a crashed pass had left half-done, finished now. */
  tombstonesFinished: number;
  /** Milliseconds each phase took. */
  phases: Record<'tombstones' | 'uploads' | 'manifests' | 'links' | 'blobs' | 'orphans', number>;
}

/** Blob store deletions in flight at once. */
const deleteConcurrency = 8;
/** An index of an index of … is rare; each round frees the next level. */
const maxManifestRounds = 16;
/**
 * Rows a pass writes per transaction. On SQLite a transaction holds the one
 * writer lock, and a push that wants it waits (on the serving thread): this
 * many rows commit in a fraction of a millisecond, and the pass rests
 * between them (see `#pace`), so the lock is free most of the time.
 */
const writeSlice = 32;

/**
 * One online garbage collection pass, while the registry serves. Order:
 * finish what a crashed pass left, expire uploads, delete unreachable
 * manifests (when configured), unlink layers no manifest references, then
 * delete blobs nothing links and bytes nothing knows. Every deletion is
 * re-checked in the transaction that makes it, against a cutoff of
 * `pass start - gracePeriod`; metadata goes before bytes, so a crash leaves
 * at worst a tombstone the next pass finishes. One pass at a time across
 * replicas (the collector lease).
 */
export class GarbageCollector {
  readonly #settings: CollectorSettings;
  readonly #deps: CollectorDependencies;

  constructor(settings: CollectorSettings, dependencies: CollectorDependencies) {
    this.#settings = settings;
    this.#deps = dependencies;
  }

  /** Runs a pass; undefined when another collector holds the lease. */
  async run(options: { dryRun?: boolean; signal?: AbortSignal } = {}): Promise<GcReport | undefined> {
    const lease = await this.#deps.operations.leases.acquire(collectorLease);
    if (lease === undefined) return undefined;
    try {
      const signal = options.signal === undefined ? lease.signal : AbortSignal.any([lease.signal, options.signal]);
      return await new Pass(this.#settings, this.#deps, options.dryRun === true, signal).run();
    } finally {
      await lease.release();
    }
  }
}

class Pass {
  readonly #settings: CollectorSettings;
  readonly #deps: CollectorDependencies;
  readonly #dryRun: boolean;
  readonly #signal: AbortSignal;
  readonly #startedAt: Date;
  readonly #cutoff: Date;
  readonly #report: GcReport;
  readonly #log: Logger;
  /** Dry runs only: per digest, how many of its links this pass would remove. */
  readonly #wouldUnlink = new Map<Digest, number>();
  /** When the pass last finished resting: work since then counts towards the next rest. */
  #restedAt = performance.now();

  constructor(settings: CollectorSettings, deps: CollectorDependencies, dryRun: boolean, signal: AbortSignal) {
    this.#settings = settings;
    this.#deps = deps;
    this.#dryRun = dryRun;
    this.#signal = signal;
    this.#startedAt = new Date((deps.clock ?? Date.now)());
    this.#cutoff = new Date(this.#startedAt.getTime() - settings.gracePeriod);
    this.#log = deps.logger.child({ gc: dryRun ? 'dry-run' : 'pass' });
    this.#report = {
      dryRun,
      startedAt: this.#startedAt,
      durationMs: 0,
      cutoff: this.#cutoff,
      uploads: { sessions: 0, leftovers: 0, multipart: 0 },
      manifestsDeleted: 0,
      linksRemoved: 0,
      blobsDeleted: 0,
      bytesFreed: 0,
      orphansDeleted: 0,
      tombstonesFinished: 0,
      phases: { tombstones: 0, uploads: 0, manifests: 0, links: 0, blobs: 0, orphans: 0 },
    };
  }

  async run(): Promise<GcReport> {
    const settings = this.#settings;
    this.#log.info({ cutoff: this.#cutoff.toISOString() }, 'garbage collection started');
    if (!this.#dryRun) await this.#timed('tombstones', () => this.#finishTombstones());
    await this.#timed('uploads', async () => {
      this.#report.uploads = await removeExpiredUploads(this.#deps.blobs, this.#deps.meta, new Date(this.#startedAt.getTime() - settings.uploadExpiry), {
        dryRun: this.#dryRun,
        logger: this.#log,
        signal: this.#signal,
        ...(this.#deps.sweepMultipart === undefined ? {} : { sweepMultipart: this.#deps.sweepMultipart }),
      });
    });
    if (settings.untaggedManifests) await this.#timed('manifests', () => this.#collectManifests());
    if (settings.unreferencedLinks) await this.#timed('links', () => this.#collectLinks());
    const retained = new Set<Digest>();
    for await (const digest of this.#deps.retained()) retained.add(digest);
    await this.#timed('blobs', () => this.#collectBlobs(retained));
    if (settings.orphans) await this.#timed('orphans', () => this.#collectOrphans(retained));
    if (!this.#dryRun) await this.#forgetTouches();
    this.#report.durationMs = Date.now() - this.#startedAt.getTime();
    this.#log.info({ ...this.#report, cutoff: undefined, startedAt: undefined }, 'garbage collection finished');
    return this.#report;
  }

  async #timed(phase: keyof GcReport['phases'], work: () => Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await work();
    } finally {
      this.#report.phases[phase] = Math.round(performance.now() - started);
    }
  }

  async #finishTombstones(): Promise<void> {
    const { blobs } = this.#deps.operations;
    for (;;) {
      const tombstones = await blobs.tombstones(this.#settings.batchSize);
      if (tombstones.length === 0) return;
      await this.#deleteBytes(tombstones);
      this.#report.tombstonesFinished += tombstones.length;
      this.#report.bytesFreed += sum(tombstones);
    }
  }

  async #collectManifests(): Promise<void> {
    const { namespace } = this.#deps.operations;
    for (let round = 0; round < maxManifestRounds; round++) {
      let deleted = 0;
      for await (const batch of this.#scan((cursor) => namespace.unreachableManifests(this.#cutoff, cursor, this.#settings.batchSize))) {
        if (this.#dryRun) {
          this.#report.manifestsDeleted += batch.length;
          continue;
        }
        for (const manifest of batch) {
          const change = { kind: 'manifest-deleted', ...manifest, reason: 'gc' } as const;
          const freed = await withChange(
            this.#deps.changes,
            change,
            (options) => namespace.deleteUnreachable(manifest, this.#cutoff, options),
            (size) => size !== undefined,
          );
          if (freed !== undefined) deleted++;
        }
        this.#log.debug({ phase: 'manifests', deleted }, 'deleted unreachable manifests');
      }
      this.#report.manifestsDeleted += deleted;
      // Deleting an index makes its children unreachable: go again until nothing more goes.
      if (deleted === 0 || this.#dryRun) return;
    }
  }

  async #collectLinks(): Promise<void> {
    const { namespace } = this.#deps.operations;
    for await (const batch of this.#scan((cursor) => namespace.unreferencedLinks(this.#cutoff, cursor, this.#settings.batchSize))) {
      if (this.#dryRun) for (const link of batch) this.#wouldUnlink.set(link.digest, (this.#wouldUnlink.get(link.digest) ?? 0) + 1);
      const removed = this.#dryRun ? batch.length : (await this.#inSlices(batch, (slice) => namespace.unlink(slice, this.#cutoff))).length;
      this.#report.linksRemoved += removed;
      this.#log.debug({ phase: 'links', removed }, 'removed unreferenced links');
    }
  }

  async #collectBlobs(retained: ReadonlySet<Digest>): Promise<void> {
    const { blobs } = this.#deps.operations;
    for await (const batch of this.#scan((cursor) => blobs.unlinked(this.#cutoff, cursor, this.#settings.batchSize))) {
      const candidates = batch.filter((blob) => !retained.has(blob.digest));
      const deleted = await this.#condemnAndDelete(candidates);
      this.#report.blobsDeleted += deleted.length;
    }
    if (this.#dryRun) await this.#countFreedByUnlinking(retained);
  }

  /** A dry run removes no link, so it counts the blobs whose every link it would remove. */
  async #countFreedByUnlinking(retained: ReadonlySet<Digest>): Promise<void> {
    const digests = [...this.#wouldUnlink.keys()].filter((digest) => !retained.has(digest));
    for (let start = 0; start < digests.length; start += this.#settings.batchSize) {
      const counts = await this.#deps.operations.blobs.linkCounts(digests.slice(start, start + this.#settings.batchSize));
      for (const [digest, { links, size }] of counts) {
        if (links !== this.#wouldUnlink.get(digest)) continue;
        this.#report.blobsDeleted++;
        this.#report.bytesFreed += size;
      }
    }
  }

  /** Bytes in the blob store without a row or tombstone, older than the cutoff, that no source retains. */
  async #collectOrphans(retained: ReadonlySet<Digest>): Promise<void> {
    const list = this.#deps.blobs.list;
    if (list === undefined) return;
    let pending: Digest[] = [];
    const flush = async () => {
      const known = await this.#deps.operations.blobs.known(pending);
      const orphans: SizedBlob[] = [];
      for (const digest of pending) {
        if (known.has(digest) || retained.has(digest)) continue;
        const size = await this.#deps.blobs.stat(digest);
        if (size !== undefined) orphans.push({ digest, size });
      }
      pending = [];
      this.#report.orphansDeleted += (await this.#condemnAndDelete(orphans)).length;
    };
    for await (const item of list.call(this.#deps.blobs)) {
      this.#signal.throwIfAborted();
      if (item.modifiedAt >= this.#cutoff) continue;
      pending.push(item.key);
      if (pending.length >= this.#settings.batchSize) {
        await flush();
        await this.#pace();
      }
    }
    if (pending.length > 0) await flush();
  }

  /** Condemns (re-checked in the store's transaction), deletes the bytes, then buries the tombstones. */
  async #condemnAndDelete(candidates: readonly SizedBlob[]): Promise<SizedBlob[]> {
    if (candidates.length === 0) return [];
    if (this.#dryRun) {
      this.#report.bytesFreed += sum(candidates);
      return [...candidates];
    }
    const condemned = await this.#inSlices(candidates, (slice) => this.#deps.operations.blobs.condemn(slice, this.#cutoff));
    if (condemned.length === 0) return [];
    this.#log.debug({ phase: 'blobs', condemned: condemned.length }, 'condemned blobs');
    await this.#deps.afterCondemn?.(condemned);
    await this.#deleteBytes(condemned);
    this.#report.bytesFreed += sum(condemned);
    return condemned;
  }

  async #deleteBytes(blobs: readonly SizedBlob[]): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < blobs.length) {
        const blob = blobs[next++] as SizedBlob;
        await this.#deps.blobs.delete(blob.digest);
      }
    };
    await Promise.all(Array.from({ length: Math.min(deleteConcurrency, blobs.length) }, worker));
    await this.#inSlices(blobs, async (slice) => {
      await this.#deps.operations.blobs.bury(slice.map((blob) => blob.digest));
      return [];
    });
  }

  /** Writes `items` a slice per transaction, resting between slices; what each write returned, in order. */
  async #inSlices<T, R>(items: readonly T[], write: (slice: T[]) => Promise<R[]>): Promise<R[]> {
    const written: R[] = [];
    for (let start = 0; start < items.length; start += writeSlice) {
      if (start > 0) await this.#pace();
      written.push(...(await write(items.slice(start, start + writeSlice))));
    }
    return written;
  }

  /** Touches older than the cutoff protect nothing any more: drop them, a short write at a time. */
  async #forgetTouches(): Promise<void> {
    const { blobs } = this.#deps.operations;
    for await (const _ of this.#scan((cursor) => blobs.forgetTouches(this.#cutoff, cursor, writeSlice))) {
      // Nothing to do with the digests: the scan paces the writes.
    }
  }

  /** Batches of a keyset scan, stopping when the lease is lost. */
  async *#scan<T>(next: (cursor: string | undefined) => Promise<Batch<T>>): AsyncIterable<T[]> {
    let cursor: string | undefined;
    do {
      this.#signal.throwIfAborted();
      const batch = await next(cursor);
      // The batch is handled (condemned, deleted) while this generator waits here.
      if (batch.items.length > 0) yield batch.items;
      cursor = batch.cursor;
      await this.#pace();
    } while (cursor !== undefined);
  }

  /**
   * Rests so that the work since the last rest stays within the configured
   * duty, and lets requests in. Called after every batch and between the
   * slices of a batch's writes, so that no stretch of work (and no hold of
   * an embedded store's writer lock) runs on long.
   */
  async #pace(): Promise<void> {
    const workedMs = performance.now() - this.#restedAt;
    // Queries on an embedded store run on this thread: let requests in between batches.
    await yieldToRequests();
    const { duty } = this.#settings;
    if (duty < 1) await rest((workedMs * (1 - duty)) / duty, undefined, { signal: this.#signal }).catch(() => undefined);
    this.#restedAt = performance.now();
  }
}

function sum(blobs: readonly SizedBlob[]): number {
  return blobs.reduce((total, blob) => total + blob.size, 0);
}
