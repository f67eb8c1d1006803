import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import type { OutboxRow, WriteOptions } from './meta-store.ts';

/**
 * What garbage collection, retention, quotas, events and leases keep in the
 * metadata store, beside the MetaStore's namespace. A separate interface so
 * that the MetaStore stays small; SQLite and PostgreSQL implement both, and
 * every implementation passes test/meta/operations-contract.ts.
 */
export interface OperationsStore {
  readonly blobs: BlobCollection;
  readonly namespace: NamespaceCollection;
  readonly leases: Leases;
  readonly events: EventQueue;
  readonly usage: UsageIndex;
  readonly pulls: PullLog;
  /** Releases what the store holds beside the MetaStore's connection (a lease connection). */
  close?(): Promise<void>;
}

/**
 * One batch of a scan; pass `cursor` back for the next, absent after the
 * last. A batch covers at most `limit` rows of the scanned table, whatever
 * matches among them, so each query costs the same however sparse the
 * matches are: a batch may hold no items and still have a cursor.
 */
export interface Batch<T> {
  items: T[];
  cursor?: string;
}

/** A blob as the collector sees it. */
export interface SizedBlob {
  digest: Digest;
  size: number;
}

/**
 * The blob side of collection. A blob is deleted in two steps: `condemn`
 * removes its metadata row and leaves a tombstone in one transaction, the
 * bytes are deleted, then `bury` removes the tombstone. While a tombstone
 * stands, `touch` refuses the digest, so no writer relies on bytes that are
 * about to go; a crash leaves a tombstone (finished by the next pass), never
 * a row without bytes.
 */
export interface BlobCollection {
  /**
   * Records that the digests' bytes are about to be relied on (written,
   * found already present, mounted, retained by a source). Resolves to
   * those it could not touch because they are condemned: wait and retry.
   * Serialised per digest with `condemn`.
   */
  touch(digests: readonly Digest[]): Promise<Digest[]>;
  /** Blob rows no repository links, created and last touched before `cutoff`, in digest order. */
  unlinked(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<SizedBlob>>;
  /** Which of `digests` have a metadata row or a tombstone. */
  known(digests: readonly Digest[]): Promise<Set<Digest>>;
  /** How many repositories link each of `digests` that has a row, and its size (for dry runs). */
  linkCounts(digests: readonly Digest[]): Promise<Map<Digest, { links: number; size: number }>>;
  /**
   * In one transaction, re-checks each blob (no link, row and last touch
   * before `cutoff`; without a row: no touch since `cutoff`), removes its
   * row and leaves a tombstone. Resolves to the condemned ones, sized from
   * the row when there was one.
   */
  condemn(blobs: readonly SizedBlob[], cutoff: Date): Promise<SizedBlob[]>;
  /** Tombstones still standing, oldest first. */
  tombstones(limit: number): Promise<SizedBlob[]>;
  /** Removes tombstones once the bytes are gone. */
  bury(digests: readonly Digest[]): Promise<void>;
  /**
   * Of the next `limit` touches after `cursor` in digest order, drops those
   * older than `cutoff` (they protect nothing any more); the items are the
   * digests forgotten. One short write per call, whatever the table's size.
   */
  forgetTouches(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<Digest>>;
}

export interface BlobLink {
  repository: RepositoryName;
  digest: Digest;
}

export interface ManifestKey {
  repository: RepositoryName;
  digest: Digest;
}

/** A repository's tags and manifests, for retention. */
export interface RepositoryContents {
  tags: { tag: Tag; digest: Digest; updatedAt: Date }[];
  manifests: { digest: Digest; size: number; createdAt: Date; subject?: Digest; children: Digest[] }[];
}

/** The namespace side: links and manifests nothing needs any more. */
export interface NamespaceCollection {
  /** Links linked before `cutoff` that no manifest of their repository references. */
  unreferencedLinks(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<BlobLink>>;
  /** Removes the links that, re-checked in the transaction, are still unreferenced and older than `cutoff`. */
  unlink(links: readonly BlobLink[], cutoff: Date): Promise<BlobLink[]>;
  /**
   * Manifests created before `cutoff` that no tag names, no index of their
   * repository lists, and whose subject (if any) is gone.
   */
  unreachableManifests(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<ManifestKey>>;
  /**
   * Deletes the manifest when, re-checked in the transaction, it is still
   * unreachable and created before `cutoff`; its size, or undefined. The
   * outbox rows are committed with the deletion, and only with it.
   */
  deleteUnreachable(manifest: ManifestKey, cutoff: Date, options?: WriteOptions): Promise<number | undefined>;
  /** Deletes the tag only while it still names `digest` and has not been pushed since `unchangedSince` (with its outbox rows, as above). */
  deleteTag(repository: RepositoryName, tag: Tag, digest: Digest, unchangedSince: Date, options?: WriteOptions): Promise<boolean>;
  contents(repository: RepositoryName): Promise<RepositoryContents>;
}

/** A set of repository names: an indexed prefix range, then an anchored pattern (see src/policy/globs.ts). */
export interface RepositoryScope {
  prefix: string;
  pattern: string;
}

export interface Usage {
  /** Distinct blobs linked into the repositories, plus their manifests. */
  bytes: number;
  /** Repositories holding at least one link or manifest. */
  repositories: number;
}

export interface UsageIndex {
  usage(scope: RepositoryScope): Promise<Usage>;
  /** Whether any repository of the scope links `digest` (storing it again there costs nothing). */
  holds(scope: RepositoryScope, digest: Digest): Promise<boolean>;
  /** Whether the repository holds any link or manifest. */
  occupied(repository: RepositoryName): Promise<boolean>;
  /** Names of the scope's repositories that hold content, sorted. */
  repositories(scope: RepositoryScope): Promise<RepositoryName[]>;
}

/**
 * Named leases: at most one live holder each, across processes and
 * replicas (one collector, one delivery loop per webhook). A holder that
 * dies loses its lease (connection gone, or lease expired).
 */
export interface Leases {
  acquire(name: string): Promise<Lease | undefined>;
}

export interface Lease {
  /** Aborted when the lease is lost (the store became unreachable): stop the work it guards. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

export interface QueuedEvent {
  id: number;
  webhook: string;
  /** The CloudEvent, serialised; or several, as a JSON array with one per line (see src/events/outbox-bodies.ts). */
  body: string;
  enqueuedAt: Date;
  attempts: number;
  nextAttemptAt: Date;
}

/**
 * The durable outbox of webhook deliveries; one row per event and webhook,
 * or per group of events written together (pulls) and webhook.
 * Changes to the namespace put their rows in with the change
 * (`WriteOptions.outbox`); `enqueue` is for events of no such change
 * (pulls, finished GC passes).
 */
export interface EventQueue {
  enqueue(events: readonly OutboxRow[]): Promise<void>;
  /** The oldest undelivered events of a webhook, in the order they were enqueued. */
  head(webhook: string, limit: number): Promise<QueuedEvent[]>;
  /** Delivered (or given up): removed. */
  remove(ids: readonly number[]): Promise<void>;
  /** A failed attempt: counted, and retried not before `nextAttemptAt`. */
  postpone(ids: readonly number[], nextAttemptAt: Date, error: string): Promise<void>;
  /** Events waiting, per webhook (a row holding a group counts its events). */
  backlog(): Promise<Map<string, number>>;
}

/** When each manifest was last pulled, for retention's "keep what was pulled recently". */
export interface PullLog {
  record(pulls: readonly { repository: RepositoryName; digest: Digest; at: Date }[]): Promise<void>;
  lastPulls(repository: RepositoryName): Promise<Map<Digest, Date>>;
  /** Forgets pulls before `cutoff`. */
  prune(cutoff: Date): Promise<number>;
}
