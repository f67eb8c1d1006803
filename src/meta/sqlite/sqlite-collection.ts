import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import type { Batch, BlobCollection, BlobLink, ManifestKey, NamespaceCollection, RepositoryContents, SizedBlob } from '../operations-store.ts';
import { nextRowCursor, parseRowCursor } from '../cursors.ts';
import type { WriteOptions } from '../meta-store.ts';
import type { SQLInputValue } from 'node:sqlite';
import type { Row, SqliteStatements } from './database.ts';
import { insertOutbox } from './outbox.ts';

// The predicates of collection, shared by the scans and by the re-checks
// inside the deleting transactions, so that both always agree.
const blobUnlinked = 'NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)';
const notTouchedSince = (digest: string) => `NOT EXISTS (SELECT 1 FROM blob_touches t WHERE t.digest = ${digest} AND t.touched_at >= :cutoff)`;
const linkUnreferenced = `NOT EXISTS (SELECT 1 FROM manifest_references mr INDEXED BY manifest_references_by_target
  WHERE mr.repository_id = rb.repository_id AND mr.target = rb.digest AND mr.kind = 'blob')`;
const manifestUnreachable = `m.created_at < :cutoff
  AND NOT EXISTS (SELECT 1 FROM tags t INDEXED BY tags_by_digest WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references mr INDEXED BY manifest_references_by_target WHERE mr.repository_id = m.repository_id AND mr.target = m.digest AND mr.kind = 'manifest')
  AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject))`;

/** Blob collection on SQLite: one writer at a time, so every transaction is a re-check under lock. */
export class SqliteBlobCollection implements BlobCollection {
  readonly #q: SqliteStatements;

  constructor(q: SqliteStatements) {
    this.#q = q;
  }

  async touch(digests: readonly Digest[]): Promise<Digest[]> {
    const q = this.#q;
    return q.transaction(() => {
      const now = Date.now();
      const condemned: Digest[] = [];
      for (const digest of digests) {
        if (q.get('SELECT 1 FROM blob_tombstones WHERE digest = ?', digest) !== undefined) {
          condemned.push(digest);
          continue;
        }
        q.run('INSERT INTO blob_touches (digest, touched_at) VALUES (?, ?) ON CONFLICT DO UPDATE SET touched_at = excluded.touched_at', digest, now);
      }
      return condemned;
    });
  }

  async unlinked(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<SizedBlob>> {
    const rows = allNamed(
      this.#q,
      `SELECT b.digest, b.size, (b.created_at < :cutoff AND ${blobUnlinked} AND ${notTouchedSince('b.digest')}) AS eligible
       FROM (SELECT digest, size, created_at FROM blobs WHERE digest > :after ORDER BY digest LIMIT :limit) AS b
       ORDER BY b.digest`,
      { after: cursor ?? '', cutoff: cutoff.getTime(), limit },
    );
    const items = rows.filter(isEligible).map((row) => ({ digest: row['digest'] as Digest, size: row['size'] as number }));
    const last = rows[rows.length - 1];
    return rows.length < limit || last === undefined ? { items } : { items, cursor: last['digest'] as string };
  }

  async known(digests: readonly Digest[]): Promise<Set<Digest>> {
    const rows = this.#q.all(
      `SELECT value AS digest FROM json_each(?) WHERE value IN (SELECT digest FROM blobs) OR value IN (SELECT digest FROM blob_tombstones)`,
      JSON.stringify(digests),
    );
    return new Set(rows.map((row) => row['digest'] as Digest));
  }

  async linkCounts(digests: readonly Digest[]): Promise<Map<Digest, { links: number; size: number }>> {
    const rows = this.#q.all(
      `SELECT b.digest, b.size, (SELECT COUNT(*) FROM repository_blobs rb WHERE rb.digest = b.digest) AS links
       FROM blobs b WHERE b.digest IN (SELECT value FROM json_each(?))`,
      JSON.stringify(digests),
    );
    return new Map(rows.map((row) => [row['digest'] as Digest, { links: row['links'] as number, size: row['size'] as number }]));
  }

  async condemn(blobs: readonly SizedBlob[], cutoff: Date): Promise<SizedBlob[]> {
    const q = this.#q;
    return q.transaction(() => {
      const now = Date.now();
      const condemned: SizedBlob[] = [];
      const params = { cutoff: cutoff.getTime() };
      for (const blob of blobs) {
        if (q.get('SELECT 1 FROM blob_tombstones WHERE digest = ?', blob.digest) !== undefined) continue;
        if (getNamed(q, `SELECT 1 WHERE ${notTouchedSince(':digest')}`, { ...params, digest: blob.digest }) === undefined) continue;
        const row = q.get('SELECT size FROM blobs WHERE digest = ?', blob.digest);
        if (row !== undefined) {
          const removed = runNamed(q, `DELETE FROM blobs AS b WHERE b.digest = :digest AND b.created_at < :cutoff AND ${blobUnlinked}`, {
            ...params,
            digest: blob.digest,
          });
          if (removed === 0) continue;
        }
        const size = row === undefined ? blob.size : (row['size'] as number);
        q.run('INSERT INTO blob_tombstones (digest, size, condemned_at) VALUES (?, ?, ?)', blob.digest, size, now);
        condemned.push({ digest: blob.digest, size });
      }
      return condemned;
    });
  }

  async tombstones(limit: number): Promise<SizedBlob[]> {
    return this.#q
      .all('SELECT digest, size FROM blob_tombstones ORDER BY condemned_at, digest LIMIT ?', limit)
      .map((row) => ({ digest: row['digest'] as Digest, size: row['size'] as number }));
  }

  async bury(digests: readonly Digest[]): Promise<void> {
    this.#q.run('DELETE FROM blob_tombstones WHERE digest IN (SELECT value FROM json_each(?))', JSON.stringify(digests));
  }

  async forgetTouches(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<Digest>> {
    const range = this.#q.all('SELECT digest, touched_at FROM blob_touches WHERE digest > ? ORDER BY digest LIMIT ?', cursor ?? '', limit);
    const old = range.filter((row) => (row['touched_at'] as number) < cutoff.getTime()).map((row) => row['digest'] as Digest);
    // Re-checked in the deleting statement: a touch since the read stays.
    if (old.length > 0) {
      this.#q.run('DELETE FROM blob_touches WHERE digest IN (SELECT value FROM json_each(?)) AND touched_at < ?', JSON.stringify(old), cutoff.getTime());
    }
    const last = range[range.length - 1];
    return range.length < limit || last === undefined ? { items: old } : { items: old, cursor: last['digest'] as string };
  }
}

/** Link and manifest collection on SQLite. */
export class SqliteNamespaceCollection implements NamespaceCollection {
  readonly #q: SqliteStatements;

  constructor(q: SqliteStatements) {
    this.#q = q;
  }

  async unreferencedLinks(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<BlobLink>> {
    const [afterId, afterDigest] = parseRowCursor(cursor);
    const rows = allNamed(
      this.#q,
      `SELECT rb.repository_id, r.name, rb.digest, (rb.linked_at < :cutoff AND ${linkUnreferenced}) AS eligible
       FROM (SELECT repository_id, digest, linked_at FROM repository_blobs
             WHERE (repository_id, digest) > (:id, :digest) ORDER BY repository_id, digest LIMIT :limit) AS rb
       JOIN repositories r ON r.id = rb.repository_id
       ORDER BY rb.repository_id, rb.digest`,
      { id: afterId, digest: afterDigest, cutoff: cutoff.getTime(), limit },
    );
    const items = rows.filter(isEligible).map((row) => ({ repository: row['name'] as RepositoryName, digest: row['digest'] as Digest }));
    return { items, ...nextRowCursor(rows, limit) };
  }

  async unlink(links: readonly BlobLink[], cutoff: Date): Promise<BlobLink[]> {
    const q = this.#q;
    return q.transaction(() =>
      links.filter(
        (link) =>
          runNamed(
            q,
            `DELETE FROM repository_blobs AS rb
             WHERE rb.repository_id = (SELECT id FROM repositories WHERE name = :name) AND rb.digest = :digest
             AND rb.linked_at < :cutoff AND ${linkUnreferenced} AND ${notTouchedSince('rb.digest')}`,
            { name: link.repository, digest: link.digest, cutoff: cutoff.getTime() },
          ) > 0,
      ),
    );
  }

  async unreachableManifests(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<ManifestKey>> {
    const [afterId, afterDigest] = parseRowCursor(cursor);
    const rows = allNamed(
      this.#q,
      `SELECT m.repository_id, r.name, m.digest, (${manifestUnreachable}) AS eligible
       FROM (SELECT repository_id, digest, created_at, subject FROM manifests
             WHERE (repository_id, digest) > (:id, :digest) ORDER BY repository_id, digest LIMIT :limit) AS m
       JOIN repositories r ON r.id = m.repository_id
       ORDER BY m.repository_id, m.digest`,
      { id: afterId, digest: afterDigest, cutoff: cutoff.getTime(), limit },
    );
    const items = rows.filter(isEligible).map((row) => ({ repository: row['name'] as RepositoryName, digest: row['digest'] as Digest }));
    return { items, ...nextRowCursor(rows, limit) };
  }

  async deleteUnreachable(manifest: ManifestKey, cutoff: Date, options?: WriteOptions): Promise<number | undefined> {
    const q = this.#q;
    return q.transaction(() => {
      const repositoryId = q.get('SELECT id FROM repositories WHERE name = ?', manifest.repository)?.['id'];
      if (repositoryId === undefined) return undefined;
      const key = { id: repositoryId, digest: manifest.digest, cutoff: cutoff.getTime() };
      const row = getNamed(q, `SELECT m.size FROM manifests m WHERE m.repository_id = :id AND m.digest = :digest AND ${manifestUnreachable}`, key);
      if (row === undefined) return undefined;
      q.run('DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?', repositoryId, manifest.digest);
      q.run('DELETE FROM manifests WHERE repository_id = ? AND digest = ?', repositoryId, manifest.digest);
      insertOutbox(q, options?.outbox);
      return row['size'] as number;
    });
  }

  async deleteTag(repository: RepositoryName, tag: Tag, digest: Digest, unchangedSince: Date, options?: WriteOptions): Promise<boolean> {
    const q = this.#q;
    return q.transaction(() => {
      const removed =
        q.run(
          `DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ? AND digest = ? AND updated_at < ?`,
          repository,
          tag,
          digest,
          unchangedSince.getTime(),
        ) > 0;
      if (removed) insertOutbox(q, options?.outbox);
      return removed;
    });
  }

  async contents(repository: RepositoryName): Promise<RepositoryContents> {
    const q = this.#q;
    const id = q.get('SELECT id FROM repositories WHERE name = ?', repository)?.['id'];
    if (id === undefined) return { tags: [], manifests: [] };
    const tags = q
      .all('SELECT name, digest, updated_at FROM tags WHERE repository_id = ? ORDER BY name', id)
      .map((row) => ({ tag: row['name'] as Tag, digest: row['digest'] as Digest, updatedAt: new Date(row['updated_at'] as number) }));
    const children = new Map<Digest, Digest[]>();
    for (const row of q.all(`SELECT manifest_digest, target FROM manifest_references WHERE repository_id = ? AND kind = 'manifest'`, id)) {
      const parent = row['manifest_digest'] as Digest;
      children.set(parent, [...(children.get(parent) ?? []), row['target'] as Digest]);
    }
    const manifests = q.all('SELECT digest, size, created_at, subject FROM manifests WHERE repository_id = ? ORDER BY digest', id).map((row) => {
      const digest = row['digest'] as Digest;
      return {
        digest,
        size: row['size'] as number,
        createdAt: new Date(row['created_at'] as number),
        ...(row['subject'] === null ? {} : { subject: row['subject'] as Digest }),
        children: children.get(digest) ?? [],
      };
    });
    return { tags, manifests };
  }
}

/** Scans read a bounded range of rows and flag the ones that qualify. */
function isEligible(row: Row): boolean {
  return row['eligible'] === 1;
}

type Named = Record<string, SQLInputValue>;

function allNamed(q: SqliteStatements, sql: string, params: Named): Row[] {
  return q.statement(sql).all(params) as Row[];
}

function getNamed(q: SqliteStatements, sql: string, params: Named): Row | undefined {
  return q.statement(sql).get(params) as Row | undefined;
}

function runNamed(q: SqliteStatements, sql: string, params: Named): number {
  return Number(q.statement(sql).run(params).changes);
}
