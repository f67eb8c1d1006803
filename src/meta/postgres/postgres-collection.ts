import type pg from 'pg';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName, Tag } from '../../oci/names.ts';
import type { Batch, BlobCollection, BlobLink, ManifestKey, NamespaceCollection, RepositoryContents, SizedBlob } from '../operations-store.ts';
import { nextRowCursor, parseRowCursor } from '../cursors.ts';
import type { WriteOptions } from '../meta-store.ts';
import { insertOutbox } from './outbox.ts';
import { inTransaction } from './transaction.ts';

type Row = Record<string, unknown>;

/** Advisory lock class of digests: `touch` and `condemn` of one digest never overlap. */
const digestLockClass = 0x6265;

// The predicates of collection, shared by the scans and by the re-checks
// inside the deleting transactions, so that both always agree. `$cutoff`
// is replaced by the parameter number of each query.
const notTouchedSince = (digest: string, cutoff: string) => `NOT EXISTS (SELECT 1 FROM blob_touches t WHERE t.digest = ${digest} AND t.touched_at >= ${cutoff})`;
const blobUnlinked = 'NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)';
const linkUnreferenced = `NOT EXISTS (SELECT 1 FROM manifest_references mr
  WHERE mr.repository_id = rb.repository_id AND mr.target = rb.digest AND mr.kind = 'blob')`;
const manifestUnreachable = (cutoff: string) => `m.created_at < ${cutoff}
  AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
  AND NOT EXISTS (SELECT 1 FROM manifest_references mr WHERE mr.repository_id = m.repository_id AND mr.target = m.digest AND mr.kind = 'manifest')
  AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject))`;

/**
 * Blob collection on PostgreSQL. A digest's `touch` and `condemn` take the
 * same transaction-scoped advisory lock; `condemn` also locks the blob row,
 * which a concurrent link's foreign key check needs, so a link is either
 * seen by the re-check or made after the row is gone (and then re-creates it
 * after touching, which waits for the tombstone to go).
 */
export class PostgresBlobCollection implements BlobCollection {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  touch(digests: readonly Digest[]): Promise<Digest[]> {
    const unique = [...new Set(digests)];
    return inTransaction(this.#pool, async (client) => {
      await lockDigests(client, unique);
      const tombstones = await client.query('SELECT digest FROM blob_tombstones WHERE digest = ANY($1::text[])', [unique]);
      const condemned = new Set(tombstones.rows.map((row: Row) => row['digest'] as Digest));
      await client.query(
        `INSERT INTO blob_touches (digest, touched_at) SELECT d, now() FROM unnest($1::text[]) AS d
         ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at`,
        [unique.filter((digest) => !condemned.has(digest))],
      );
      return [...condemned];
    });
  }

  async unlinked(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<SizedBlob>> {
    const { rows } = await this.#pool.query<Row>(
      `SELECT b.digest, b.size, (b.created_at < $2 AND ${blobUnlinked} AND ${notTouchedSince('b.digest', '$2')}) AS eligible
       FROM (SELECT digest, size, created_at FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $3) AS b
       ORDER BY b.digest`,
      [cursor ?? '', cutoff, limit],
    );
    const items = rows.filter(isEligible).map(sizedBlob);
    const last = rows[rows.length - 1];
    return rows.length < limit || last === undefined ? { items } : { items, cursor: last['digest'] as string };
  }

  async known(digests: readonly Digest[]): Promise<Set<Digest>> {
    const { rows } = await this.#pool.query<Row>(
      'SELECT digest FROM blobs WHERE digest = ANY($1::text[]) UNION SELECT digest FROM blob_tombstones WHERE digest = ANY($1::text[])',
      [digests],
    );
    return new Set(rows.map((row) => row['digest'] as Digest));
  }

  async linkCounts(digests: readonly Digest[]): Promise<Map<Digest, { links: number; size: number }>> {
    const { rows } = await this.#pool.query<Row>(
      `SELECT b.digest, b.size, (SELECT COUNT(*) FROM repository_blobs rb WHERE rb.digest = b.digest) AS links
       FROM blobs b WHERE b.digest = ANY($1::text[])`,
      [digests],
    );
    return new Map(rows.map((row) => [row['digest'] as Digest, { links: Number(row['links']), size: row['size'] as number }]));
  }

  condemn(blobs: readonly SizedBlob[], cutoff: Date): Promise<SizedBlob[]> {
    const unique = [...new Map(blobs.map((blob) => [blob.digest, blob])).values()];
    const digests = unique.map((blob) => blob.digest);
    return inTransaction(this.#pool, async (client) => {
      await lockDigests(client, digests);
      await client.query('SELECT digest FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR UPDATE', [digests]);
      const { rows } = await client.query<Row>(
        `WITH candidates AS (
           SELECT c.digest, c.size FROM unnest($1::text[], $2::bigint[]) AS c(digest, size)
           WHERE ${notTouchedSince('c.digest', '$3')} AND NOT EXISTS (SELECT 1 FROM blob_tombstones bt WHERE bt.digest = c.digest)
         ), deleted AS (
           DELETE FROM blobs b USING candidates c WHERE b.digest = c.digest AND b.created_at < $3 AND ${blobUnlinked}
           RETURNING b.digest, b.size
         ), orphans AS (
           SELECT c.digest, c.size FROM candidates c WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = c.digest)
         )
         INSERT INTO blob_tombstones (digest, size, condemned_at)
         SELECT digest, size, now() FROM (SELECT * FROM deleted UNION ALL SELECT * FROM orphans) AS condemned
         ON CONFLICT DO NOTHING RETURNING digest, size`,
        [digests, unique.map((blob) => blob.size), cutoff],
      );
      return rows.map(sizedBlob);
    });
  }

  async tombstones(limit: number): Promise<SizedBlob[]> {
    const { rows } = await this.#pool.query<Row>('SELECT digest, size FROM blob_tombstones ORDER BY condemned_at, digest LIMIT $1', [limit]);
    return rows.map(sizedBlob);
  }

  async bury(digests: readonly Digest[]): Promise<void> {
    await this.#pool.query('DELETE FROM blob_tombstones WHERE digest = ANY($1::text[])', [digests]);
  }

  async forgetTouches(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<Digest>> {
    const { rows } = await this.#pool.query<Row>(
      `WITH range AS (SELECT digest FROM blob_touches WHERE digest > $2 ORDER BY digest LIMIT $3),
       forgotten AS (DELETE FROM blob_touches t USING range r WHERE t.digest = r.digest AND t.touched_at < $1 RETURNING t.digest)
       SELECT (SELECT COALESCE(json_agg(digest), '[]') FROM forgotten) AS forgotten, (SELECT count(*) FROM range) AS seen, (SELECT max(digest) FROM range) AS last`,
      [cutoff, cursor ?? '', limit],
    );
    const row = rows[0];
    const items = (row?.['forgotten'] ?? []) as Digest[];
    return Number(row?.['seen'] ?? 0) < limit || row?.['last'] == null ? { items } : { items, cursor: row['last'] as string };
  }
}

/** Link and manifest collection on PostgreSQL: candidates are locked, then re-checked by a statement that sees every commit before the lock. */
export class PostgresNamespaceCollection implements NamespaceCollection {
  readonly #pool: pg.Pool;

  constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  async unreferencedLinks(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<BlobLink>> {
    const [afterId, afterDigest] = parseRowCursor(cursor);
    const { rows } = await this.#pool.query<Row>(
      `SELECT rb.repository_id, r.name, rb.digest, (rb.linked_at < $3 AND ${linkUnreferenced}) AS eligible
       FROM (SELECT repository_id, digest, linked_at FROM repository_blobs
             WHERE (repository_id, digest) > ($1, $2) ORDER BY repository_id, digest LIMIT $4) AS rb
       JOIN repositories r ON r.id = rb.repository_id
       ORDER BY rb.repository_id, rb.digest`,
      [afterId, afterDigest, cutoff, limit],
    );
    return { items: rows.filter(isEligible).map((row) => ({ repository: row['name'] as RepositoryName, digest: row['digest'] as Digest })), ...nextRowCursor(rows, limit) };
  }

  unlink(links: readonly BlobLink[], cutoff: Date): Promise<BlobLink[]> {
    const names = links.map((link) => link.repository);
    const digests = links.map((link) => link.digest);
    return inTransaction(this.#pool, async (client) => {
      const pairs = 'unnest($1::text[], $2::text[]) AS l(name, digest)';
      // Locked first: a manifest put holding these links FOR SHARE finishes before the re-check below.
      await client.query(
        `SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id JOIN ${pairs} ON r.name = l.name AND rb.digest = l.digest
         ORDER BY rb.repository_id, rb.digest FOR UPDATE OF rb`,
        [names, digests],
      );
      const { rows } = await client.query<Row>(
        `DELETE FROM repository_blobs rb USING repositories r, ${pairs}
         WHERE r.id = rb.repository_id AND r.name = l.name AND rb.digest = l.digest AND rb.linked_at < $3
         AND ${linkUnreferenced} AND ${notTouchedSince('rb.digest', '$3')}
         RETURNING r.name, rb.digest`,
        [names, digests, cutoff],
      );
      return rows.map((row) => ({ repository: row['name'] as RepositoryName, digest: row['digest'] as Digest }));
    });
  }

  async unreachableManifests(cutoff: Date, cursor: string | undefined, limit: number): Promise<Batch<ManifestKey>> {
    const [afterId, afterDigest] = parseRowCursor(cursor);
    const { rows } = await this.#pool.query<Row>(
      `SELECT m.repository_id, r.name, m.digest, (${manifestUnreachable('$3')}) AS eligible
       FROM (SELECT repository_id, digest, created_at, subject FROM manifests
             WHERE (repository_id, digest) > ($1, $2) ORDER BY repository_id, digest LIMIT $4) AS m
       JOIN repositories r ON r.id = m.repository_id
       ORDER BY m.repository_id, m.digest`,
      [afterId, afterDigest, cutoff, limit],
    );
    return { items: rows.filter(isEligible).map((row) => ({ repository: row['name'] as RepositoryName, digest: row['digest'] as Digest })), ...nextRowCursor(rows, limit) };
  }

  deleteUnreachable(manifest: ManifestKey, cutoff: Date, options?: WriteOptions): Promise<number | undefined> {
    return inTransaction(this.#pool, async (client) => {
      const found = await client.query<Row>('SELECT id FROM repositories WHERE name = $1', [manifest.repository]);
      const repositoryId = found.rows[0]?.['id'];
      if (repositoryId === undefined) return undefined;
      // A put of this manifest (or of an index listing it) holds the row until it commits.
      await client.query('SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR UPDATE', [repositoryId, manifest.digest]);
      const { rows } = await client.query<Row>(`DELETE FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2 AND ${manifestUnreachable('$3')} RETURNING m.size`, [
        repositoryId,
        manifest.digest,
        cutoff,
      ]);
      if (rows[0] === undefined) return undefined;
      await client.query('DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2', [repositoryId, manifest.digest]);
      await insertOutbox(client, options?.outbox);
      return rows[0]['size'] as number;
    });
  }

  async deleteTag(repository: RepositoryName, tag: Tag, digest: Digest, unchangedSince: Date, options?: WriteOptions): Promise<boolean> {
    const sql = `DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 AND digest = $3 AND updated_at < $4`;
    const params = [repository, tag, digest, unchangedSince];
    const outbox = options?.outbox ?? [];
    if (outbox.length === 0) return ((await this.#pool.query(sql, params)).rowCount ?? 0) > 0;
    return inTransaction(this.#pool, async (client) => {
      const removed = ((await client.query(sql, params)).rowCount ?? 0) > 0;
      if (removed) await insertOutbox(client, outbox);
      return removed;
    });
  }

  async contents(repository: RepositoryName): Promise<RepositoryContents> {
    const found = await this.#pool.query<Row>('SELECT id FROM repositories WHERE name = $1', [repository]);
    const id = found.rows[0]?.['id'];
    if (id === undefined) return { tags: [], manifests: [] };
    const [tags, references, manifests] = await Promise.all([
      this.#pool.query<Row>('SELECT name, digest, updated_at FROM tags WHERE repository_id = $1 ORDER BY name', [id]),
      this.#pool.query<Row>(`SELECT manifest_digest, target FROM manifest_references WHERE repository_id = $1 AND kind = 'manifest'`, [id]),
      this.#pool.query<Row>('SELECT digest, size, created_at, subject FROM manifests WHERE repository_id = $1 ORDER BY digest', [id]),
    ]);
    const children = new Map<Digest, Digest[]>();
    for (const row of references.rows) {
      const parent = row['manifest_digest'] as Digest;
      children.set(parent, [...(children.get(parent) ?? []), row['target'] as Digest]);
    }
    return {
      tags: tags.rows.map((row) => ({ tag: row['name'] as Tag, digest: row['digest'] as Digest, updatedAt: row['updated_at'] as Date })),
      manifests: manifests.rows.map((row) => {
        const digest = row['digest'] as Digest;
        return {
          digest,
          size: row['size'] as number,
          createdAt: row['created_at'] as Date,
          ...(row['subject'] === null ? {} : { subject: row['subject'] as Digest }),
          children: children.get(digest) ?? [],
        };
      }),
    };
  }
}

/** Locks each digest (by hash, in hash order, so two lockers never wait on each other crosswise) until the transaction ends. */
async function lockDigests(client: pg.PoolClient, digests: readonly Digest[]): Promise<void> {
  await client.query(`SELECT pg_advisory_xact_lock($1, h) FROM (SELECT DISTINCT hashtext(d) AS h FROM unnest($2::text[]) AS d ORDER BY h) AS hashes`, [digestLockClass, digests]);
}

function sizedBlob(row: Row): SizedBlob {
  return { digest: row['digest'] as Digest, size: row['size'] as number };
}

/** Scans read a bounded range of rows and flag the ones that qualify. */
function isEligible(row: Row): boolean {
  return row['eligible'] === true;
}
