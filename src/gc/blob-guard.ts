import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore, UploadArea } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { BlobCollection, Leases } from '../meta/operations-store.ts';
import type { Digest } from '../oci/digest.ts';

/** The lease a collector holds for its whole pass. */
export const collectorLease = 'gc';

export interface BlobGuardOptions {
  /** Between checks while a digest is condemned. */
  pollInterval?: number;
  /** After this long, a tombstone no collector is working on is finished by the writer itself. */
  abandonedAfter?: number;
  /** Longest wait before the write fails (503): a collector stuck deleting bytes. */
  maxWait?: number;
}

/**
 * Keeps garbage collection off blobs that are about to be relied on. Every
 * path that makes a blob's bytes readable (an upload committed, a blob found
 * already present, a mount) touches the digest first; a collector keeps
 * anything touched within its grace period and re-checks that inside the
 * transaction that condemns a blob. A digest already condemned is waited
 * for: its bytes are being deleted, and are written again afterwards.
 */
export class BlobGuard {
  readonly #collection: BlobCollection;
  readonly #leases: Leases;
  readonly #store: BlobStore;
  readonly #pollInterval: number;
  readonly #abandonedAfter: number;
  readonly #maxWait: number;
  #waiting = 0;

  constructor(collection: BlobCollection, leases: Leases, store: BlobStore, options: BlobGuardOptions = {}) {
    this.#collection = collection;
    this.#leases = leases;
    this.#store = store;
    this.#pollInterval = options.pollInterval ?? 20;
    this.#abandonedAfter = options.abandonedAfter ?? 1000;
    this.#maxWait = options.maxWait ?? 60_000;
  }

  /** Writes waiting right now for a collector to finish deleting their digest. */
  get waiting(): number {
    return this.#waiting;
  }

  async protect(digests: readonly Digest[]): Promise<void> {
    const pending = await this.#collection.touch(digests);
    if (pending.length === 0) return;
    this.#waiting += 1;
    try {
      await this.#waitFor(pending);
    } finally {
      this.#waiting -= 1;
    }
  }

  async #waitFor(condemned: readonly Digest[]): Promise<void> {
    const started = Date.now();
    let pending = condemned;
    while (pending.length > 0) {
      const waited = Date.now() - started;
      if (waited > this.#maxWait) {
        throw new RegistryError('UNKNOWN', 'the blob is being removed by garbage collection; try again shortly', {
          status: 503,
          headers: { 'retry-after': '5' },
          detail: { digest: pending[0] },
        });
      }
      if (waited > this.#abandonedAfter) await this.#finishAbandoned(pending);
      await sleep(this.#pollInterval);
      pending = await this.#collection.touch(pending);
    }
  }

  /** Wraps a BlobStore so that every commit protects its digest first (uploads, conversions, extractions, cache fills). */
  wrap(store: BlobStore): BlobStore {
    const inner = store.uploads;
    const uploads: UploadArea = {
      create: (id) => inner.create(id),
      append: (id: string, offset: number, data: Readable, signal?: AbortSignal) => inner.append(id, offset, data, signal),
      read: (id, signal, size) => inner.read(id, signal, size),
      commit: async (id, digest, size) => {
        await this.protect([digest]);
        await inner.commit(id, digest, size);
      },
      remove: (id) => inner.remove(id),
      list: () => inner.list(),
    };
    const wrapped: BlobStore = {
      stat: (digest, signal) => store.stat(digest, signal),
      open: (digest, range, signal) => store.open(digest, range, signal),
      delete: (digest) => store.delete(digest),
      uploads,
      chunkMinLength: store.chunkMinLength,
    };
    if (store.openRegion !== undefined) wrapped.openRegion = (digest, range) => (store.openRegion as NonNullable<BlobStore['openRegion']>).call(store, digest, range);
    if (store.redirectUrl !== undefined) wrapped.redirectUrl = (digest) => (store.redirectUrl as NonNullable<BlobStore['redirectUrl']>).call(store, digest);
    if (store.list !== undefined) wrapped.list = () => (store.list as NonNullable<BlobStore['list']>).call(store);
    if (store.close !== undefined) wrapped.close = () => (store.close as NonNullable<BlobStore['close']>).call(store);
    return wrapped;
  }

  /**
   * A tombstone outlives its collector only when the collector died between
   * condemning and deleting. With the collector lease free, nobody else is
   * deleting these bytes: finish the job, so the write can go on.
   */
  async #finishAbandoned(digests: readonly Digest[]): Promise<void> {
    const lease = await this.#leases.acquire(collectorLease);
    if (lease === undefined) return;
    try {
      // Only lease holders bury tombstones, so what is still condemned now stays so until we are done.
      const condemned = await this.#collection.touch(digests);
      for (const digest of condemned) await this.#store.delete(digest);
      await this.#collection.bury(condemned);
    } finally {
      await lease.release();
    }
  }
}
