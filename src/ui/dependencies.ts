import type { Page } from '../meta/meta-store.ts';
import type { BrowseIndex } from '../meta/browse-index.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import type { Repository, RepositoryWriter } from '../registry/repository.ts';
import type { RetentionReport } from '../policy/retention.ts';
import type { QuotaUsage } from '../policy/quotas.ts';
import type { AccessPolicy, SessionAccess } from '../http/access.ts';
import type { RecentEvent, RecentEvents } from './recent-events.ts';

export type RepositoryKind = 'hosted' | 'proxy' | 'archive' | 'droplet';

/** A source whose names the browse index does not hold (archive, droplet): listed from its catalog. */
export interface UnindexedCatalog {
  kind: RepositoryKind;
  catalog(page: Page): Promise<RepositoryName[]>;
}

/** The last garbage collection pass, as the operations page shows it. */
export interface LastGc {
  finishedAt: Date;
  seconds: number;
  bytesFreed: number;
  blobsDeleted: number;
  manifestsDeleted: number;
  linksRemoved: number;
}

/** What happened lately, across every worker of the process. */
export interface RecentActivity {
  lastGc?: LastGc;
  nextGc?: Date;
  /** Newest first. */
  events: RecentEvent[];
}

/** What the operations page shows, from the process's Operations. */
export interface UiOperations {
  quotas(): Promise<QuotaUsage[]>;
  /** The last and next GC pass and the latest changes (`limit`), whichever worker saw them. */
  activity(limit: number): Promise<RecentActivity>;
  gcInterval: number;
  retentionConfigured: boolean;
  retentionPreview(): Promise<RetentionReport | undefined>;
}

/** Everything the web UI and its JSON API read from; built by the server wiring. */
export interface UiDependencies {
  browse: BrowseIndex;
  /** The repository kind serving a name (the longest configured prefix). */
  kindOf(name: RepositoryName): RepositoryKind;
  unindexed: readonly UnindexedCatalog[];
  /**
   * The repository as the UI reads it: for hosted and proxy names the stored
   * content (a proxy's cache, without asking its upstream); other kinds
   * through the router. Undefined when no source serves the name.
   */
  open(name: RepositoryName): Promise<Repository | undefined>;
  /** The write side as /v2/ would use it (undefined for read-only kinds). */
  writer(name: RepositoryName): Promise<RepositoryWriter | undefined>;
  /** When each manifest of the repository was last pulled (as far as recorded). */
  lastPulls(name: RepositoryName): Promise<Map<Digest, Date>>;
  immutable(name: RepositoryName, tag: Tag): boolean;
  /** The upstream of a proxy repository, and when the tag was last checked there. */
  upstreamOf(name: RepositoryName, tag?: Tag): { upstream: string; repository: string; checkedAt?: Date } | undefined;
  deletes: boolean;
  operations: UiOperations;
  events: RecentEvents;
  sessionTtl: number;
}

/** What createApp hands an extension, plus sign-in sessions from the security wiring. */
export interface UiAccess {
  access?: AccessPolicy;
  sessions?: SessionAccess;
}
