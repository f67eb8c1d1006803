import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
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
import { SqliteStatements } from './database.ts';

const stagedSelect = 'SELECT d.guid, d.staged_at, c.* FROM droplets d JOIN droplet_conversions c ON c.droplet_digest = d.droplet_digest';
const liveRootfs = '(r.expires_at IS NULL OR r.expires_at > ?)';

/**
 * The DropletStore over the SqliteMetaStore's database (its tables come
 * with the MetaStore's migrations). Composed images are written with the
 * same rows a push writes: links, manifest, references, tags.
 */
export class SqliteDropletStore implements DropletStore {
  readonly conversions: ConversionIndex;
  readonly droplets: DropletRecords;
  readonly rootfs: RootfsHistory;
  readonly compositions: CompositionIndex;

  constructor(db: DatabaseSync) {
    const q = new DropletQueries(db);
    this.conversions = {
      get: async (dropletDigest) => {
        const row = q.get('SELECT * FROM droplet_conversions WHERE droplet_digest = ?', dropletDigest);
        return row === undefined ? undefined : conversionFromRow(row);
      },
    };
    const staged = (source: string, app: string, guid: string): StagedDroplet | undefined => {
      const row = q.get(`${stagedSelect} WHERE d.source = ? AND d.app = ? AND d.guid = ?`, source, app, guid);
      return row === undefined ? undefined : stagedDropletFromRow(row);
    };
    this.droplets = {
      get: async (source, app, guid) => staged(source, app, guid),
      latest: async (source, app) => {
        const row = q.get(`${stagedSelect} WHERE d.source = ? AND d.app = ? ORDER BY d.staged_at DESC, d.guid DESC LIMIT 1`, source, app);
        return row === undefined ? undefined : stagedDropletFromRow(row);
      },
      put: async (source, app, droplet, record, keep) =>
        q.transaction(() => {
          const existing = staged(source, app, droplet.guid);
          if (existing !== undefined) return existing;
          const now = Date.now();
          q.run(
            `INSERT INTO droplet_conversions (droplet_digest, layer_digest, layer_size, diff_id, process_types, converted_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
            droplet.dropletDigest,
            droplet.layer.digest,
            droplet.layer.size,
            droplet.layer.diffId,
            JSON.stringify(droplet.processTypes),
            now,
          );
          q.run(
            'INSERT INTO droplets (source, app, guid, droplet_digest, staged_at, record_repository, record_digest) VALUES (?, ?, ?, ?, ?, ?, ?)',
            source,
            app,
            droplet.guid,
            droplet.dropletDigest,
            droplet.stagedAt.getTime(),
            record.repository,
            record.digest,
          );
          q.storeImage(recordImage(record, droplet), now);
          const forgotten = q.all(
            `SELECT guid FROM droplets WHERE source = ? AND app = ? AND guid NOT IN
               (SELECT guid FROM droplets WHERE source = ? AND app = ? ORDER BY staged_at DESC, guid DESC LIMIT ?)`,
            source,
            app,
            source,
            app,
            keep,
          );
          for (const row of forgotten) q.forget(source, app, row['guid'] as string);
          return staged(source, app, droplet.guid) as StagedDroplet;
        }),
      delete: async (source, app, guid) => q.transaction(() => q.forget(source, app, guid)),
      guids: async (source, app) => q.all('SELECT guid FROM droplets WHERE source = ? AND app = ? ORDER BY guid', source, app).map((row) => row['guid'] as string),
      apps: async (source, page) =>
        q.all('SELECT DISTINCT app FROM droplets WHERE source = ? AND app > ? ORDER BY app LIMIT ?', source, page.last ?? '', page.limit ?? -1).map((row) => row['app'] as string),
    };
    const rootfsRow = (source: string, digest: Digest) => q.get('SELECT * FROM droplet_rootfs WHERE source = ? AND layer_digest = ?', source, digest);
    this.rootfs = {
      latest: async (source) => {
        const row = q.get('SELECT * FROM droplet_rootfs WHERE source = ? AND expires_at IS NULL ORDER BY imported_at DESC LIMIT 1', source);
        return row === undefined ? undefined : rootfsFromRow(row);
      },
      byOrigin: async (source, origin) => {
        const row = q.get('SELECT * FROM droplet_rootfs WHERE source = ? AND origin = ? ORDER BY imported_at DESC LIMIT 1', source, origin);
        return row === undefined ? undefined : rootfsFromRow(row);
      },
      history: async (source) => q.all('SELECT * FROM droplet_rootfs WHERE source = ? ORDER BY imported_at DESC', source).map(rootfsFromRow),
      add: async (source, rootfs, image, retentionMs) =>
        q.transaction(() => {
          if (rootfsRow(source, rootfs.digest) !== undefined) {
            q.run('UPDATE droplet_rootfs SET origin = ? WHERE source = ? AND layer_digest = ?', rootfs.origin, source, rootfs.digest);
            return false;
          }
          const now = rootfs.importedAt.getTime();
          q.run('UPDATE droplet_rootfs SET expires_at = ? WHERE source = ? AND expires_at IS NULL', now + retentionMs, source);
          q.run(
            `INSERT INTO droplet_rootfs (source, layer_digest, layer_size, diff_id, origin, imported_at, expires_at, image_repository, image_digest)
             VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
            source,
            rootfs.digest,
            rootfs.size,
            rootfs.diffId,
            rootfs.origin,
            now,
            image.repository,
            image.digest,
          );
          q.storeImage(rootfsImage(image, rootfs), now);
          return true;
        }),
      rollback: async (source, digest, image, retentionMs, now) =>
        q.transaction(() => {
          const target = rootfsRow(source, digest);
          if (target === undefined) return undefined;
          const record = rootfsFromRow(target);
          const at = now.getTime();
          q.run('UPDATE droplet_rootfs SET expires_at = ? WHERE source = ? AND expires_at IS NULL AND layer_digest <> ?', at + retentionMs, source, digest);
          q.run(
            'UPDATE droplet_rootfs SET expires_at = NULL, image_repository = ?, image_digest = ? WHERE source = ? AND layer_digest = ?',
            image.repository,
            image.digest,
            source,
            digest,
          );
          q.storeImage(rootfsImage(image, record), at);
          const { expiresAt: _expiresAt, ...latest } = record;
          return latest;
        }),
    };
    this.compositions = {
      get: async (source, repository, digest, now) => {
        const row = q.get(
          `SELECT c.*, m.content, m.media_type, r.layer_size AS rootfs_size, r.diff_id AS rootfs_diff_id FROM droplet_compositions c
           JOIN repositories rp ON rp.name = c.repository JOIN manifests m ON m.repository_id = rp.id AND m.digest = c.digest
           JOIN droplet_rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
           WHERE c.source = ? AND c.repository = ? AND c.digest = ? AND ${liveRootfs}`,
          source,
          repository,
          digest,
          now.getTime(),
        );
        return row === undefined ? undefined : compositionFromRow(row);
      },
      put: async (source, composition, tag, now) =>
        q.transaction(() => {
          if (q.get('SELECT 1 FROM droplets WHERE source = ? AND app = ? AND guid = ?', source, composition.app, composition.dropletGuid) === undefined) return false;
          q.storeImage(compositionImage(composition, tag), now.getTime());
          q.run(
            `INSERT INTO droplet_compositions (${compositionColumns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
            ...compositionValues(source, composition),
          );
          return true;
        }),
      blobSize: async (source, repository, digest, now) =>
        q.get(
          `SELECT CASE WHEN c.config_digest = ?1 THEN c.config_size WHEN c.rootfs_digest = ?1 THEN r.layer_size ELSE c.droplet_layer_size END AS size
           FROM droplet_compositions c JOIN droplet_rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
           WHERE c.source = ?2 AND c.repository = ?3 AND (c.config_digest = ?1 OR c.rootfs_digest = ?1 OR c.droplet_layer = ?1)
             AND (r.expires_at IS NULL OR r.expires_at > ?4)
           LIMIT 1`,
          digest,
          source,
          repository,
          now.getTime(),
        )?.['size'] as number | undefined,
      expire: async (source, now) =>
        q.transaction(() => {
          const at = now.getTime();
          const expired = 'SELECT layer_digest FROM droplet_rootfs WHERE source = ? AND expires_at <= ?';
          const removed = q.removeCompositions(`source = ? AND rootfs_digest IN (${expired})`, [source, source, at]);
          for (const row of q.all(`SELECT image_repository, image_digest FROM droplet_rootfs WHERE source = ? AND expires_at <= ? AND image_digest IS NOT NULL`, source, at)) {
            q.removeManifest(row['image_repository'] as RepositoryName, row['image_digest'] as Digest);
          }
          q.run('UPDATE droplet_rootfs SET image_repository = NULL, image_digest = NULL WHERE source = ? AND expires_at <= ?', source, at);
          return removed;
        }),
    };
  }
}

/** The statements the droplet store shares with a push: repositories, links, manifests. */
class DropletQueries extends SqliteStatements {
  repositoryId(repository: RepositoryName): number | undefined {
    return this.get('SELECT id FROM repositories WHERE name = ?', repository)?.['id'] as number | undefined;
  }

  ensureRepository(repository: RepositoryName, now: number): number {
    this.run('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING', repository, now);
    return this.repositoryId(repository) as number;
  }

  link(repositoryId: number, blob: { digest: Digest; size: number }, now: number): void {
    this.run('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', blob.digest, blob.size, now);
    this.run(
      'INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at',
      repositoryId,
      blob.digest,
      now,
    );
  }

  storeImage(image: StoredImage, now: number): void {
    const repositoryId = this.ensureRepository(image.repository, now);
    for (const blob of image.blobs) this.link(repositoryId, blob, now);
    this.run(
      `INSERT INTO manifests (repository_id, digest, media_type, content, size, subject, artifact_type, annotations, created_at)
       VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?) ON CONFLICT DO UPDATE SET created_at = excluded.created_at`,
      repositoryId,
      image.digest,
      image.mediaType,
      image.bytes,
      image.bytes.byteLength,
      now,
    );
    for (const blob of image.blobs) {
      this.run(
        `INSERT INTO manifest_references (repository_id, manifest_digest, target, kind) VALUES (?, ?, ?, 'blob') ON CONFLICT DO NOTHING`,
        repositoryId,
        image.digest,
        blob.digest,
      );
    }
    for (const tag of image.tags) {
      this.run(
        `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at WHERE tags.digest <> excluded.digest`,
        repositoryId,
        tag,
        image.digest,
        now,
      );
    }
  }

  removeManifest(repository: RepositoryName, digest: Digest): void {
    const repositoryId = this.repositoryId(repository);
    if (repositoryId === undefined) return;
    this.run('DELETE FROM tags WHERE repository_id = ? AND digest = ?', repositoryId, digest);
    this.run('DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?', repositoryId, digest);
    this.run('DELETE FROM manifests WHERE repository_id = ? AND digest = ?', repositoryId, digest);
  }

  /** Removes the compositions `where` selects, with their manifests; how many. */
  removeCompositions(where: string, params: SQLInputValue[]): number {
    const rows = this.all(`SELECT repository, digest FROM droplet_compositions WHERE ${where}`, ...params);
    for (const row of rows) this.removeManifest(row['repository'] as RepositoryName, row['digest'] as Digest);
    this.run(`DELETE FROM droplet_compositions WHERE ${where}`, ...params);
    return rows.length;
  }

  /** Forgets a droplet, its compositions, and its conversion when no droplet shares it. */
  forget(source: string, app: string, guid: string): boolean {
    this.removeCompositions('source = ? AND app = ? AND guid = ?', [source, app, guid]);
    const row = this.get('SELECT record_repository, record_digest FROM droplets WHERE source = ? AND app = ? AND guid = ?', source, app, guid);
    if (row !== undefined) this.removeManifest(row['record_repository'] as RepositoryName, row['record_digest'] as Digest);
    const removed = this.run('DELETE FROM droplets WHERE source = ? AND app = ? AND guid = ?', source, app, guid) > 0;
    this.run('DELETE FROM droplet_conversions WHERE NOT EXISTS (SELECT 1 FROM droplets d WHERE d.droplet_digest = droplet_conversions.droplet_digest)');
    return removed;
  }
}
