import type { OutboxRow } from '../meta/meta-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';

/** A change the hosted write path makes to a repository. */
export type Change =
  | { kind: 'manifest-pushed'; repository: RepositoryName; digest: Digest; mediaType: string; size: number; tags: readonly Tag[] }
  | { kind: 'manifest-deleted'; repository: RepositoryName; digest: Digest }
  | { kind: 'tag-deleted'; repository: RepositoryName; tag: Tag }
  | { kind: 'blob-deleted'; repository: RepositoryName; digest: Digest };

/**
 * What the hosted write path commits with each change: the rows of the
 * event queue that describe it, handed to the MetaStore write that makes
 * the change (`WriteOptions.outbox`), so that the change and its events are
 * stored in one transaction. An acknowledged change always has its events;
 * a change that failed or rolled back has none. Absent, nothing is recorded.
 */
export interface ChangeLog {
  /**
   * The rows describing `change`; empty when nobody listens for it. Events
   * recorded earlier are in the queue once this resolves, so the queue keeps
   * the order things happened in.
   */
  rows(change: Change): Promise<readonly OutboxRow[]>;
  /** The rows were committed with their change (wakes delivery). */
  committed(rows: readonly OutboxRow[]): void;
}
