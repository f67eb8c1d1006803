import type pg from 'pg';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import {
  compositionColumns,
  compositionFromRow,
  compositionImage,
  compositionValues,
  conversionFromRow,
  recordImage,
  rootfsFromRow,
  rootfsImage,
  stagedDropletFromRow,
  type StoredImage,
} from '../droplet-rows.ts';
import type { CompositionIndex, ConversionIndex, DropletRecords, DropletStore, RootfsHistory, StagedDroplet } from '../droplet-store.ts';
import { inTransaction } from './transaction.ts';

type Row = Record<string, unknown>;
type Queryable = pg.Pool | pg.PoolClient;

const stagedSelect = 'SELECT d.guid, d.staged_at, c.* FROM droplets d JOIN droplet_conversions c ON c.droplet_digest = d.droplet_digest';

/**
 * The DropletStore on the PostgresMetaStore's pool (its tables come with
 * the MetaStore's migrations). Writes to one prefix's droplets or rootfs
 * are serialised by a transaction-scoped advisory lock, so replicas racing
 * to record the same guid or import the same rootfs agree on one winner.
 */
export class PostgresDropletStore implements DropletStore {
  readonly conversions: ConversionIndex;
  readonly droplets: DropletRecords;
  readonly rootfs: RootfsHistory;
  readonly compositions: CompositionIndex;

  constructor(pool: pg.Pool) {
    const rows = async (db: Queryable, sql: string, params: unknown[]): Promise<Row[]> => (await db.query<Row>(sql, params)).rows;
    const transaction = <T>(work: (client: pg.PoolClient) => Promise<T>) => inTransaction(pool, work);
    this.conversions = {
      get: async (dropletDigest) => {
        const row = (await rows(pool, 'SELECT * FROM droplet_conversions WHERE droplet_digest = $1', [dropletDigest]))[0];
        return row === undefined ? undefined : conversionFromRow(row);
      },
    };
    const staged = async (db: Queryable, source: string, app: string, guid: string): Promise<StagedDroplet | undefined> => {
      const row = (await rows(db, `${stagedSelect} WHERE d.source = $1 AND d.app = $2 AND d.guid = $3`, [source, app, guid]))[0];
      return row === undefined ? undefined : stagedDropletFromRow(row);
    };
    this.droplets = {
      get: (source, app, guid) => staged(pool, source, app, guid),
      latest: async (source, app) => {
        const row = (await rows(pool, `${stagedSelect} WHERE d.source = $1 AND d.app = $2 ORDER BY d.staged_at DESC, d.guid DESC LIMIT 1`, [source, app]))[0];
        return row === undefined ? undefined : stagedDropletFromRow(row);
      },
      put: (source, app, droplet, record, keep) =>
        transaction(async (client) => {
          await lockSource(client, 'droplets', source);
          const existing = await staged(client, source, app, droplet.guid);
          if (existing !== undefined) return existing;
          await client.query(
            `INSERT INTO droplet_conversions (droplet_digest, layer_digest, layer_size, diff_id, process_types, converted_at)
             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING`,
            [droplet.dropletDigest, droplet.layer.digest, droplet.layer.size, droplet.layer.diffId, JSON.stringify(droplet.processTypes)],
          );
          await client.query('INSERT INTO droplets (source, app, guid, droplet_digest, staged_at, record_repository, record_digest) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
            source,
            app,
            droplet.guid,
            droplet.dropletDigest,
            droplet.stagedAt,
            record.repository,
            record.digest,
          ]);
          await storeImage(client, recordImage(record, droplet));
          const forgotten = await rows(
            client,
            `SELECT guid FROM droplets WHERE source = $1 AND app = $2 AND guid NOT IN
               (SELECT guid FROM droplets WHERE source = $1 AND app = $2 ORDER BY staged_at DESC, guid DESC LIMIT $3)`,
            [source, app, keep],
          );
          for (const row of forgotten) await forget(client, source, app, row['guid'] as string);
          return (await staged(client, source, app, droplet.guid)) as StagedDroplet;
        }),
      delete: (source, app, guid) =>
        transaction(async (client) => {
          await lockSource(client, 'droplets', source);
          return forget(client, source, app, guid);
        }),
      guids: async (source, app) => (await rows(pool, 'SELECT guid FROM droplets WHERE source = $1 AND app = $2 ORDER BY guid', [source, app])).map((row) => row['guid'] as string),
      apps: async (source, page) =>
        (await rows(pool, 'SELECT DISTINCT app FROM droplets WHERE source = $1 AND app > $2 ORDER BY app LIMIT $3', [source, page.last ?? '', page.limit ?? null])).map(
          (row) => row['app'] as string,
        ),
    };
    const rootfsRow = async (db: Queryable, source: string, digest: Digest) =>
      (await rows(db, 'SELECT * FROM droplet_rootfs WHERE source = $1 AND layer_digest = $2', [source, digest]))[0];
    this.rootfs = {
      latest: async (source) => {
        const row = (await rows(pool, 'SELECT * FROM droplet_rootfs WHERE source = $1 AND expires_at IS NULL ORDER BY imported_at DESC LIMIT 1', [source]))[0];
        return row === undefined ? undefined : rootfsFromRow(row);
      },
      byOrigin: async (source, origin) => {
        const row = (await rows(pool, 'SELECT * FROM droplet_rootfs WHERE source = $1 AND origin = $2 ORDER BY imported_at DESC LIMIT 1', [source, origin]))[0];
        return row === undefined ? undefined : rootfsFromRow(row);
      },
      history: async (source) => (await rows(pool, 'SELECT * FROM droplet_rootfs WHERE source = $1 ORDER BY imported_at DESC', [source])).map(rootfsFromRow),
      add: (source, rootfs, image, retentionMs) =>
        transaction(async (client) => {
          await lockSource(client, 'rootfs', source);
          if ((await rootfsRow(client, source, rootfs.digest)) !== undefined) {
            await client.query('UPDATE droplet_rootfs SET origin = $3 WHERE source = $1 AND layer_digest = $2', [source, rootfs.digest, rootfs.origin]);
            return false;
          }
          const now = rootfs.importedAt;
          await client.query('UPDATE droplet_rootfs SET expires_at = $2 WHERE source = $1 AND expires_at IS NULL', [source, new Date(now.getTime() + retentionMs)]);
          await client.query(
            `INSERT INTO droplet_rootfs (source, layer_digest, layer_size, diff_id, origin, imported_at, expires_at, image_repository, image_digest)
             VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, $8)`,
            [source, rootfs.digest, rootfs.size, rootfs.diffId, rootfs.origin, now, image.repository, image.digest],
          );
          await storeImage(client, rootfsImage(image, rootfs));
          return true;
        }),
      rollback: (source, digest, image, retentionMs, now) =>
        transaction(async (client) => {
          await lockSource(client, 'rootfs', source);
          const target = await rootfsRow(client, source, digest);
          if (target === undefined) return undefined;
          const record = rootfsFromRow(target);
          await client.query('UPDATE droplet_rootfs SET expires_at = $3 WHERE source = $1 AND expires_at IS NULL AND layer_digest <> $2', [
            source,
            digest,
            new Date(now.getTime() + retentionMs),
          ]);
          await client.query('UPDATE droplet_rootfs SET expires_at = NULL, image_repository = $3, image_digest = $4 WHERE source = $1 AND layer_digest = $2', [
            source,
            digest,
            image.repository,
            image.digest,
          ]);
          await storeImage(client, rootfsImage(image, record));
          const { expiresAt: _expiresAt, ...latest } = record;
          return latest;
        }),
    };
    this.compositions = {
      get: async (source, repository, digest, now) => {
        const row = (
          await rows(
            pool,
            `SELECT c.*, m.content, m.media_type, r.layer_size AS rootfs_size, r.diff_id AS rootfs_diff_id FROM droplet_compositions c
             JOIN repositories rp ON rp.name = c.repository JOIN manifests m ON m.repository_id = rp.id AND m.digest = c.digest
             JOIN droplet_rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
             WHERE c.source = $1 AND c.repository = $2 AND c.digest = $3 AND (r.expires_at IS NULL OR r.expires_at > $4)`,
            [source, repository, digest, now],
          )
        )[0];
        return row === undefined ? undefined : compositionFromRow({ ...row, content: new Uint8Array(row['content'] as Buffer) });
      },
      put: (source, composition, tag, _now) =>
        transaction(async (client) => {
          // The droplets' lock: a replica forgetting this droplet (delete, keepDroplets) either ran before, or waits and removes this composition too.
          await lockSource(client, 'droplets', source);
          if ((await rows(client, 'SELECT 1 FROM droplets WHERE source = $1 AND app = $2 AND guid = $3', [source, composition.app, composition.dropletGuid])).length === 0)
            return false;
          await storeImage(client, compositionImage(composition, tag));
          await client.query(
            `INSERT INTO droplet_compositions (${compositionColumns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
            compositionValues(source, composition),
          );
          return true;
        }),
      blobSize: async (source, repository, digest, now) =>
        (
          await rows(
            pool,
            `SELECT CASE WHEN c.config_digest = $1 THEN c.config_size WHEN c.rootfs_digest = $1 THEN r.layer_size ELSE c.droplet_layer_size END AS size
             FROM droplet_compositions c JOIN droplet_rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
             WHERE c.source = $2 AND c.repository = $3 AND (c.config_digest = $1 OR c.rootfs_digest = $1 OR c.droplet_layer = $1)
               AND (r.expires_at IS NULL OR r.expires_at > $4)
             LIMIT 1`,
            [digest, source, repository, now],
          )
        )[0]?.['size'] as number | undefined,
      expire: (source, now) =>
        transaction(async (client) => {
          const expired = 'SELECT layer_digest FROM droplet_rootfs WHERE source = $1 AND expires_at <= $2';
          const removed = await removeCompositions(client, `source = $1 AND rootfs_digest IN (${expired})`, [source, now]);
          const images = await rows(client, 'SELECT image_repository, image_digest FROM droplet_rootfs WHERE source = $1 AND expires_at <= $2 AND image_digest IS NOT NULL', [
            source,
            now,
          ]);
          for (const row of images) await removeManifest(client, row['image_repository'] as RepositoryName, row['image_digest'] as Digest);
          await client.query('UPDATE droplet_rootfs SET image_repository = NULL, image_digest = NULL WHERE source = $1 AND expires_at <= $2', [source, now]);
          return removed;
        }),
    };
  }
}

/** Serialises writers of one prefix's droplets (or rootfs) across replicas until the transaction ends. */
async function lockSource(client: pg.PoolClient, what: string, source: string): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`berth-droplet-${what}:${source}`]);
}

async function ensureRepository(client: pg.PoolClient, repository: RepositoryName): Promise<number> {
  const inserted = await client.query('INSERT INTO repositories (name, created_at) VALUES ($1, now()) ON CONFLICT DO NOTHING RETURNING id', [repository]);
  const id = inserted.rows[0]?.['id'] as number | undefined;
  if (id !== undefined) return id;
  return (await client.query('SELECT id FROM repositories WHERE name = $1', [repository])).rows[0]?.['id'] as number;
}

async function link(client: pg.PoolClient, repositoryId: number, blob: { digest: Digest; size: number }): Promise<void> {
  // DO UPDATE, not DO NOTHING: the blob row stays locked until this commits, so a collector condemning it waits and then sees the link.
  await client.query('INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, now()) ON CONFLICT (digest) DO UPDATE SET size = blobs.size', [blob.digest, blob.size]);
  await client.query(
    `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, now())
     ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
    [repositoryId, blob.digest],
  );
}

async function storeImage(client: pg.PoolClient, image: StoredImage): Promise<void> {
  const repositoryId = await ensureRepository(client, image.repository);
  for (const blob of image.blobs) await link(client, repositoryId, blob);
  await client.query(
    `INSERT INTO manifests (repository_id, digest, media_type, content, size, subject, artifact_type, annotations, created_at)
     VALUES ($1, $2, $3, $4, $5, NULL, NULL, NULL, now()) ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at`,
    [repositoryId, image.digest, image.mediaType, Buffer.from(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength), image.bytes.byteLength],
  );
  await client.query(
    `INSERT INTO manifest_references (repository_id, manifest_digest, target, kind)
     SELECT $1, $2, target, 'blob' FROM unnest($3::text[]) AS r(target) ON CONFLICT DO NOTHING`,
    [repositoryId, image.digest, image.blobs.map((blob) => blob.digest)],
  );
  for (const tag of [...image.tags].sort()) {
    await client.query(
      `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at WHERE tags.digest <> excluded.digest`,
      [repositoryId, tag, image.digest],
    );
  }
}

async function removeManifest(client: pg.PoolClient, repository: RepositoryName, digest: Digest): Promise<void> {
  const id = (await client.query('SELECT id FROM repositories WHERE name = $1', [repository])).rows[0]?.['id'] as number | undefined;
  if (id === undefined) return;
  await client.query('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [id, digest]);
  await client.query('DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2', [id, digest]);
  await client.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [id, digest]);
}

async function removeCompositions(client: pg.PoolClient, where: string, params: unknown[]): Promise<number> {
  const found = (await client.query<Row>(`DELETE FROM droplet_compositions WHERE ${where} RETURNING repository, digest`, params)).rows;
  for (const row of found) await removeManifest(client, row['repository'] as RepositoryName, row['digest'] as Digest);
  return found.length;
}

async function forget(client: pg.PoolClient, source: string, app: string, guid: string): Promise<boolean> {
  await removeCompositions(client, 'source = $1 AND app = $2 AND guid = $3', [source, app, guid]);
  const row = (await client.query<Row>('SELECT record_repository, record_digest FROM droplets WHERE source = $1 AND app = $2 AND guid = $3', [source, app, guid])).rows[0];
  if (row !== undefined) await removeManifest(client, row['record_repository'] as RepositoryName, row['record_digest'] as Digest);
  const removed = await client.query('DELETE FROM droplets WHERE source = $1 AND app = $2 AND guid = $3', [source, app, guid]);
  await client.query('DELETE FROM droplet_conversions WHERE NOT EXISTS (SELECT 1 FROM droplets d WHERE d.droplet_digest = droplet_conversions.droplet_digest)');
  return (removed.rowCount ?? 0) > 0;
}
