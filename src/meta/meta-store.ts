import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';

/** A slice of a sorted listing: entries after `last`, at most `limit` of them. */
export interface Page {
  last?: string;
  limit?: number;
}

/** A manifest exactly as pushed, with what the index keeps about it. */
export interface ManifestRecord {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  subject?: Digest;
  /** The artifact type reported in referrers listings. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** What a manifest points at; all of it must already be in the repository. */
export interface ManifestReferences {
  blobs: readonly Digest[];
  children: readonly Digest[];
}

/**
 * A row of the durable event queue (the outbox), committed in the same
 * transaction as the change it describes: the change and its event are
 * either both stored or neither is.
 */
export interface OutboxRow {
  webhook: string;
  /** The CloudEvent, serialised; or several, as a JSON array with one per line (see src/events/outbox-bodies.ts). */
  body: string;
  /** Sending it was tried once already, before it was queued (events handed to the sender in memory): retried not before `retryAt`. */
  failedOnce?: { retryAt: Date; error: string };
}

/** What a write commits beside the change itself. */
export interface WriteOptions {
  /** Inserted into the event queue in the write's transaction, only when the write changed something. */
  outbox?: readonly OutboxRow[];
}

export interface PutOptions extends WriteOptions {
  /**
   * Tags among `tags` that must not move (immutable tags): when one already
   * names another manifest, nothing is stored and DENIED is thrown. Checked
   * inside the write, so two pushes racing for the tag cannot both win.
   */
  fixedTags?: readonly Tag[];
  /**
   * The referenced blobs and child manifests may arrive later: they are
   * recorded (GC follows them) but not checked. A cache stores a manifest
   * before it has fetched what the manifest names.
   */
  referencesPending?: boolean;
}

export interface UploadSession {
  id: string;
  repository: RepositoryName;
  /** Bytes received so far. */
  size: number;
  startedAt: Date;
  updatedAt: Date;
  /** The user who started the upload; only they may continue it. Absent when started anonymously or without access control. */
  owner?: string;
}

/**
 * The namespace: repositories, blob links, manifests, tags, referrers and
 * upload sessions. Indexed, so no request walks storage. Every
 * implementation passes test/meta/contract.ts.
 */
export interface MetaStore {
  readonly repositories: RepositoryIndex;
  readonly blobs: BlobLinks;
  readonly manifests: ManifestIndex;
  readonly tags: TagIndex;
  readonly uploads: UploadSessions;
  /** Throws when the database cannot be reached; cheap (readiness checks call it every second or two). */
  ping?(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface RepositoryIndex {
  /** True when the repository holds any blob link or manifest. */
  exists(repository: RepositoryName): Promise<boolean>;
  /** Repositories holding at least one manifest, sorted by name. */
  list(page: Page): Promise<RepositoryName[]>;
}

/**
 * The linked-blob rule: a blob is stored once for the whole registry and
 * readable only in repositories it was pushed or mounted into.
 */
export interface BlobLinks {
  /** The blob's size when it is linked into `repository`. */
  linkedSize(repository: RepositoryName, digest: Digest): Promise<number | undefined>;
  /** Up to `limit` repositories linking the blob, sorted by name. */
  linkedIn(digest: Digest, limit: number): Promise<RepositoryName[]>;
  /** The blob's size when any repository links it. */
  storedSize(digest: Digest): Promise<number | undefined>;
  /** Records a durable blob and links it into `repository` (creating the repository). */
  link(repository: RepositoryName, digest: Digest, size: number): Promise<void>;
  /** Removes the link; false when there was none. */
  unlink(repository: RepositoryName, digest: Digest, options?: WriteOptions): Promise<boolean>;
}

export interface ManifestIndex {
  get(repository: RepositoryName, reference: Reference): Promise<ManifestRecord | undefined>;
  /**
   * Stores the manifest and points `tags` at it, in one transaction, after
   * checking that every referenced blob and child manifest is in the
   * repository (otherwise one MANIFEST_BLOB_UNKNOWN per missing digest, unless `referencesPending`).
   * Re-putting is idempotent.
   */
  put(repository: RepositoryName, manifest: ManifestRecord, references: ManifestReferences, tags: readonly Tag[], options?: PutOptions): Promise<void>;
  /** Removes the manifest and every tag pointing at it; false when absent. */
  delete(repository: RepositoryName, digest: Digest, options?: WriteOptions): Promise<boolean>;
  /** Manifests whose subject is `subject`, optionally of one artifact type, sorted by digest. */
  referrers(repository: RepositoryName, subject: Digest, artifactType?: string, page?: Page): Promise<Descriptor[]>;
}

export interface TagIndex {
  /** Tags of the repository, sorted lexically (byte order). */
  list(repository: RepositoryName, page: Page): Promise<Tag[]>;
  /** Removes one tag (not the manifest); false when absent. */
  delete(repository: RepositoryName, tag: Tag, options?: WriteOptions): Promise<boolean>;
  /**
   * A value that changes whenever any tag of the repository changes, read
   * with one indexed lookup; undefined when the repository does not exist.
   * Lets tag lists be cached and revalidated per request.
   */
  version?(repository: RepositoryName): Promise<string | undefined>;
}

export interface UploadSessions {
  create(session: UploadSession): Promise<void>;
  get(id: string): Promise<UploadSession | undefined>;
  /** Moves the size from `from` to `to`; false when the size was not `from` (a lost race). */
  advance(id: string, from: number, to: number): Promise<boolean>;
  /** False when the session did not exist. */
  delete(id: string): Promise<boolean>;
  /** Sessions not touched since `cutoff`, for expiry. */
  staleSince(cutoff: Date): Promise<UploadSession[]>;
  /** How many sessions are open (a metric), counted without loading them. */
  count(): Promise<number>;
}
