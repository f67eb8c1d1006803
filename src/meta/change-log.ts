import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import type { OutboxRow } from './meta-store.ts';

/** Who deleted: a client through the registry API, a retention policy, garbage collection, or a cache's size budget. */
export type DeletionReason = 'api' | 'retention' | 'gc' | 'eviction';

/** A change to a repository's namespace, as its events describe it. */
export type Change =
  | { kind: 'manifest-pushed'; repository: RepositoryName; digest: Digest; mediaType: string; size: number; tags: readonly Tag[] }
  | { kind: 'manifest-deleted'; repository: RepositoryName; digest: Digest; reason: DeletionReason }
  /** `digest`: the manifest the tag named, when the deleter knows it (retention). */
  | { kind: 'tag-deleted'; repository: RepositoryName; tag: Tag; digest?: Digest; reason: DeletionReason }
  | { kind: 'blob-deleted'; repository: RepositoryName; digest: Digest; reason: DeletionReason };

/**
 * What a write commits with each change: the rows of the event queue that
 * describe it, handed to the store write that makes the change
 * (`WriteOptions.outbox`), so that the change and its events are stored in
 * one transaction. An acknowledged change always has its events; a change
 * that failed or rolled back has none. Used by the hosted write path,
 * retention and garbage collection; absent, nothing is recorded.
 */
export interface ChangeLog {
  /**
   * The rows describing `change`; empty when nobody listens for it. Events
   * recorded earlier are in the queue once this resolves (or handed to the
   * sender, which sends them first), so the queue keeps the order things
   * happened in.
   */
  rows(change: Change): Promise<readonly OutboxRow[]>;
  /** The rows were committed with their change (wakes delivery). */
  committed(rows: readonly OutboxRow[]): void;
}

/** Runs `write` with the outbox rows of `change`, and reports them committed when the write changed something. */
export async function withChange<T>(
  changes: ChangeLog | undefined,
  change: Change,
  write: (options: { outbox: readonly OutboxRow[] } | undefined) => Promise<T>,
  changed: (result: T) => boolean,
): Promise<T> {
  const outbox = (await changes?.rows(change)) ?? [];
  const result = await write(outbox.length === 0 ? undefined : { outbox });
  if (outbox.length > 0 && changed(result)) changes?.committed(outbox);
  return result;
}
