import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { Page } from '../../meta/meta-store.ts';

/** A layer stored in the BlobStore: its gzip digest and size, and the digest of the tar inside (diff_id). */
export interface StoredLayer {
  digest: Digest;
  size: number;
  diffId: Digest;
}

/** A droplet turned into a layer once, found again by the droplet's own sha256. */
export interface Conversion {
  dropletDigest: Digest;
  layer: StoredLayer;
  /** `start_command` of the droplet's staging_info.yml, when it has one. */
  startCommand?: string;
}

/** One droplet of one app: which bytes it is and when it was staged. */
export interface DropletRecord {
  guid: string;
  dropletDigest: Digest;
  stagedAt: Date;
}

/** A droplet record with its converted layer. */
export type StagedDroplet = DropletRecord & Conversion;

/** One imported rootfs. `origin` says where it came from (a configured file's identity, or an import). */
export interface RootfsRecord extends StoredLayer {
  origin: string;
  importedAt: Date;
}

/** An image composed on pull: exact manifest bytes and the blobs they name. */
export interface Composition {
  repository: RepositoryName;
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  config: { digest: Digest; size: number };
  rootfs: StoredLayer;
  dropletLayer: StoredLayer;
}

/**
 * What the droplet kind remembers, kept apart from the MetaStore because
 * droplet images are composed, not pushed. Everything but conversions is
 * scoped by `source`, the repository prefix the droplet kind serves.
 * The SQLite implementation is sqlite-droplet-index.ts; a PostgreSQL one
 * needs the same four tables (see docs/decisions.md).
 */
export interface DropletIndex {
  readonly conversions: ConversionIndex;
  readonly droplets: DropletRecords;
  readonly rootfs: RootfsHistory;
  readonly compositions: CompositionIndex;
  /**
   * Every blob this index still needs: droplet layers of known droplets,
   * the current rootfs and those within their retention, the configs of
   * live compositions. A collector must not delete these.
   */
  retainedBlobs(now: Date): AsyncIterable<Digest>;
  close(): Promise<void>;
}

export interface ConversionIndex {
  get(dropletDigest: Digest): Promise<Conversion | undefined>;
}

export interface DropletRecords {
  /** The droplet `guid` of `app`, with its layer. */
  get(source: string, app: string, guid: string): Promise<StagedDroplet | undefined>;
  /** The most recently staged droplet of `app`. */
  latest(source: string, app: string): Promise<StagedDroplet | undefined>;
  /**
   * Records a droplet with its conversion, in one transaction, and forgets
   * all but the `keep` most recently staged droplets of the app.
   */
  put(source: string, app: string, droplet: StagedDroplet, keep: number): Promise<void>;
  /** Droplet guids of `app`, sorted (byte order). */
  guids(source: string, app: string): Promise<string[]>;
  /** Apps holding at least one droplet, sorted. */
  apps(source: string, page: Page): Promise<string[]>;
}

export interface RootfsHistory {
  /** The rootfs every composition uses from now on. */
  latest(source: string): Promise<RootfsRecord | undefined>;
  /** The rootfs imported from `origin`, if any (to skip re-importing an unchanged file). */
  byOrigin(source: string, origin: string): Promise<RootfsRecord | undefined>;
  /**
   * Makes `rootfs` the latest; the one it replaces (and its compositions)
   * stays readable for `retentionMs`. Adding the current one again is a no-op.
   */
  add(source: string, rootfs: RootfsRecord, retentionMs: number): Promise<void>;
}

export interface CompositionIndex {
  /** A composition still readable at `now` (its rootfs is current or within retention). */
  get(source: string, repository: RepositoryName, digest: Digest, now: Date): Promise<Composition | undefined>;
  put(source: string, composition: Composition, now: Date): Promise<void>;
  /** Size of a blob that a readable composition of `repository` names. */
  blobSize(source: string, repository: RepositoryName, digest: Digest, now: Date): Promise<number | undefined>;
}
