import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import type { Page } from './meta-store.ts';

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
  /** Commands the droplet itself declares per process type (staging_info.yml's start_command as `web`, Procfile entries). */
  processTypes: Record<string, string>;
}

/** One droplet of one app: which bytes it is and when Berth recorded it (the order of `latest`). */
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

/** A rootfs in a prefix's history: when it stops being served (absent while it is the latest). */
export interface RootfsEntry extends RootfsRecord {
  expiresAt?: Date;
}

/**
 * An image composed on pull, stored as an ordinary manifest of `repository`:
 * its blobs are linked there and referenced by it, so garbage collection
 * treats them like any pushed image's.
 */
export interface Composition {
  repository: RepositoryName;
  /** The droplet shown: forgetting the droplet removes the composition. */
  app: string;
  dropletGuid: string;
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  config: { digest: Digest; size: number };
  rootfs: StoredLayer;
  dropletLayer: StoredLayer;
}

/**
 * A manifest the droplet kind stores as an ordinary one, with the blobs it
 * references (linked into `repository`) and a tag of its own.
 */
export interface RecordImage {
  repository: RepositoryName;
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  config: { digest: Digest; size: number };
  /** A tag that keeps it reachable while the droplet kind keeps it. */
  tag: string;
}

/** The image that keeps a rootfs layer linked while it is current or within retention. */
export interface RootfsImage {
  /** `<prefix>rootfs`, where the rootfs is pullable as an image of its own. */
  repository: RepositoryName;
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  config: { digest: Digest; size: number };
}

/**
 * What the droplet kind keeps in the metadata database, beside the
 * MetaStore's namespace and in the same database, so that every replica
 * sees the same droplets. Everything but conversions is scoped by `source`,
 * the repository prefix the droplet kind serves. SQLite and PostgreSQL
 * implement it; both pass test/meta/droplet-contract.ts.
 */
export interface DropletStore {
  readonly conversions: ConversionIndex;
  readonly droplets: DropletRecords;
  readonly rootfs: RootfsHistory;
  readonly compositions: CompositionIndex;
}

export interface ConversionIndex {
  get(dropletDigest: Digest): Promise<Conversion | undefined>;
}

export interface DropletRecords {
  /** The droplet `guid` of `app`, with its layer. */
  get(source: string, app: string, guid: string): Promise<StagedDroplet | undefined>;
  /** The most recently recorded droplet of `app`. */
  latest(source: string, app: string): Promise<StagedDroplet | undefined>;
  /**
   * Records a droplet with its conversion and stores `record` (an artifact
   * manifest referencing the droplet layer, which keeps the layer linked as
   * long as the droplet is kept, whether or not an image was composed), and
   * forgets all but the `keep` most recent droplets of the app (with their
   * records and compositions), in one transaction. A guid is recorded once:
   * when it already is, nothing changes and the recorded droplet is
   * returned, so that the caller can tell same bytes from different ones.
   */
  put(source: string, app: string, droplet: StagedDroplet, record: RecordImage, keep: number): Promise<StagedDroplet>;
  /** Forgets a droplet, its record and its compositions; false when there was none. */
  delete(source: string, app: string, guid: string): Promise<boolean>;
  /** Droplet guids of `app`, sorted (byte order). */
  guids(source: string, app: string): Promise<string[]>;
  /** Apps holding at least one droplet, sorted. */
  apps(source: string, page: Page): Promise<string[]>;
}

export interface RootfsHistory {
  /** The rootfs every composition uses from now on. */
  latest(source: string): Promise<RootfsRecord | undefined>;
  /** The rootfs last imported from `origin`, if any (to skip re-importing an unchanged file). */
  byOrigin(source: string, origin: string): Promise<RootfsRecord | undefined>;
  /** Every rootfs the prefix has had, newest import first. */
  history(source: string): Promise<RootfsEntry[]>;
  /**
   * Makes `rootfs` the latest when its content is new to the prefix; the one
   * it replaces stays readable for `retentionMs`. Stores `image` (the rootfs
   * as an image), which keeps its layer linked. A rootfs imported before is
   * never made the latest again here (only `rollback` does that); its origin
   * is recorded, and `false` returned.
   */
  add(source: string, rootfs: RootfsRecord, image: RootfsImage, retentionMs: number): Promise<boolean>;
  /**
   * An operator's explicit step back: makes the earlier rootfs `digest`
   * the latest again, with `image` keeping it linked; the current one stays
   * readable for `retentionMs`. Undefined when the prefix never had it.
   */
  rollback(source: string, digest: Digest, image: RootfsImage, retentionMs: number, now: Date): Promise<RootfsRecord | undefined>;
}

export interface CompositionIndex {
  /** A composition still readable at `now` (its rootfs is current or within retention). */
  get(source: string, repository: RepositoryName, digest: Digest, now: Date): Promise<Composition | undefined>;
  /**
   * Stores the composition as a manifest of its repository, links its
   * blobs there and points `tag` at it, in one transaction. Stores nothing
   * and answers false when its droplet is no longer recorded (forgotten
   * while the image was composed), so that no image outlives its droplet.
   */
  put(source: string, composition: Composition, tag: Tag, now: Date): Promise<boolean>;
  /** Size of a blob that a readable composition of `repository` names. */
  blobSize(source: string, repository: RepositoryName, digest: Digest, now: Date): Promise<number | undefined>;
  /**
   * Removes the compositions and rootfs images whose rootfs retention has
   * passed (manifests, tags and records); their links are then
   * unreferenced and garbage collection reclaims what nothing else uses.
   */
  expire(source: string, now: Date): Promise<number>;
}
