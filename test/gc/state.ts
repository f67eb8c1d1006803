import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { BlobStore } from '../../src/blobs/blob-store.ts';
import type { MetaStore } from '../../src/meta/meta-store.ts';
import { PostgresMetaStore } from '../../src/meta/postgres/postgres-meta-store.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';

/** Rows of one of the namespace tables, through whichever driver the registry runs on. */
export async function rows(meta: MetaStore, sql: string): Promise<Record<string, unknown>[]> {
  if (meta instanceof SqliteMetaStore) return meta.database.prepare(sql).all() as Record<string, unknown>[];
  if (meta instanceof PostgresMetaStore) return (await meta.pool.query(sql)).rows as Record<string, unknown>[];
  throw new Error('unknown metadata driver');
}

export async function storedDigests(blobs: BlobStore): Promise<Set<string>> {
  const found = new Set<string>();
  for await (const item of blobs.list?.() ?? []) found.add(item.key);
  return found;
}

/**
 * The invariants a crash or a race must never break: every blob row has its
 * bytes (metadata goes first), every link has its row, every manifest
 * reference is linked in its repository, every tag names a manifest.
 */
export async function assertConsistent(meta: MetaStore, blobs: BlobStore): Promise<void> {
  const stored = await storedDigests(blobs);
  for (const row of await rows(meta, 'SELECT digest FROM blobs')) {
    assert.ok(stored.has(row['digest'] as string), `blob row ${String(row['digest'])} has no bytes`);
  }
  const dangling = await rows(
    meta,
    `SELECT mr.manifest_digest, mr.target FROM manifest_references mr WHERE mr.kind = 'blob'
     AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = mr.repository_id AND rb.digest = mr.target)`,
  );
  assert.deepEqual(dangling, [], 'a manifest references a blob its repository no longer links');
  const looseTags = await rows(meta, 'SELECT t.name FROM tags t WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = t.repository_id AND m.digest = t.digest)');
  assert.deepEqual(looseTags, [], 'a tag names a missing manifest');
}

/** Fetches a blob and checks its bytes hash to its digest. */
export async function assertReadable(url: string, repository: string, digest: string): Promise<void> {
  const response = await fetch(`${url}/v2/${repository}/blobs/${digest}`);
  assert.equal(response.status, 200, `${repository}@${digest} is not readable`);
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest, 'served bytes match the digest');
}
