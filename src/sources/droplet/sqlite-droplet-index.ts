import type { DatabaseSync } from 'node:sqlite';
import type { Page } from '../../meta/meta-store.ts';
import { openDatabase, SqliteStatements, type Row } from '../../meta/sqlite/database.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type {
  Composition,
  CompositionIndex,
  Conversion,
  ConversionIndex,
  DropletIndex,
  DropletRecords,
  RootfsHistory,
  RootfsRecord,
  StagedDroplet,
} from './droplet-index.ts';

/**
 * Schema of droplets.db, one entry per version (never edit a released one).
 * Times are milliseconds since the epoch. A rootfs row's `expires_at` is
 * NULL while it is the latest; compositions on it are readable until then.
 */
const migrations: readonly string[] = [
  `
  CREATE TABLE conversions (
    droplet_digest TEXT PRIMARY KEY,
    layer_digest TEXT NOT NULL,
    layer_size INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    start_command TEXT,
    converted_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE droplets (
    source TEXT NOT NULL,
    app TEXT NOT NULL,
    guid TEXT NOT NULL,
    droplet_digest TEXT NOT NULL REFERENCES conversions(droplet_digest),
    staged_at INTEGER NOT NULL,
    PRIMARY KEY (source, app, guid)
  ) WITHOUT ROWID;
  CREATE INDEX droplets_by_stage ON droplets(source, app, staged_at);
  CREATE TABLE rootfs (
    source TEXT NOT NULL,
    layer_digest TEXT NOT NULL,
    layer_size INTEGER NOT NULL,
    diff_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    imported_at INTEGER NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (source, layer_digest)
  ) WITHOUT ROWID;
  CREATE TABLE compositions (
    source TEXT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    content BLOB NOT NULL,
    config_digest TEXT NOT NULL,
    config_size INTEGER NOT NULL,
    rootfs_digest TEXT NOT NULL,
    droplet_layer TEXT NOT NULL,
    droplet_layer_size INTEGER NOT NULL,
    droplet_diff_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (source, repository, digest)
  ) WITHOUT ROWID;
  CREATE INDEX compositions_by_rootfs ON compositions(source, rootfs_digest);
  `,
];

/** A composition is readable while its rootfs is the latest or within retention. */
const live = '(r.expires_at IS NULL OR r.expires_at > ?)';

/** The droplet kind's own SQLite file (WAL), next to berth.db. */
export class SqliteDropletIndex implements DropletIndex {
  readonly conversions: ConversionIndex;
  readonly droplets: DropletRecords;
  readonly rootfs: RootfsHistory;
  readonly compositions: CompositionIndex;
  readonly #db: DatabaseSync;
  readonly #q: SqliteStatements;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    const q = new SqliteStatements(db);
    this.#q = q;
    this.conversions = {
      get: async (dropletDigest) => {
        const row = q.get('SELECT * FROM conversions WHERE droplet_digest = ?', dropletDigest);
        return row === undefined ? undefined : toConversion(row);
      },
    };
    const stagedSelect = 'SELECT d.guid, d.staged_at, c.* FROM droplets d JOIN conversions c ON c.droplet_digest = d.droplet_digest';
    this.droplets = {
      get: async (source, app, guid) => {
        const row = q.get(`${stagedSelect} WHERE d.source = ? AND d.app = ? AND d.guid = ?`, source, app, guid);
        return row === undefined ? undefined : toStagedDroplet(row);
      },
      latest: async (source, app) => {
        const row = q.get(`${stagedSelect} WHERE d.source = ? AND d.app = ? ORDER BY d.staged_at DESC, d.guid DESC LIMIT 1`, source, app);
        return row === undefined ? undefined : toStagedDroplet(row);
      },
      put: async (source, app, droplet, keep) =>
        q.transaction(() => {
          q.run(
            `INSERT INTO conversions (droplet_digest, layer_digest, layer_size, diff_id, start_command, converted_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
            droplet.dropletDigest,
            droplet.layer.digest,
            droplet.layer.size,
            droplet.layer.diffId,
            droplet.startCommand ?? null,
            Date.now(),
          );
          q.run(
            `INSERT INTO droplets (source, app, guid, droplet_digest, staged_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT DO UPDATE SET droplet_digest = excluded.droplet_digest, staged_at = excluded.staged_at`,
            source,
            app,
            droplet.guid,
            droplet.dropletDigest,
            droplet.stagedAt.getTime(),
          );
          q.run(
            `DELETE FROM droplets WHERE source = ? AND app = ? AND guid NOT IN
               (SELECT guid FROM droplets WHERE source = ? AND app = ? ORDER BY staged_at DESC, guid DESC LIMIT ?)`,
            source,
            app,
            source,
            app,
            keep,
          );
        }),
      guids: async (source, app) =>
        q.all('SELECT guid FROM droplets WHERE source = ? AND app = ? ORDER BY guid', source, app).map((row) => row['guid'] as string),
      apps: async (source, page: Page) =>
        q
          .all('SELECT DISTINCT app FROM droplets WHERE source = ? AND app > ? ORDER BY app LIMIT ?', source, page.last ?? '', page.limit ?? -1)
          .map((row) => row['app'] as string),
    };
    this.rootfs = {
      latest: async (source) => {
        const row = q.get('SELECT * FROM rootfs WHERE source = ? AND expires_at IS NULL ORDER BY imported_at DESC LIMIT 1', source);
        return row === undefined ? undefined : toRootfs(row);
      },
      byOrigin: async (source, origin) => {
        const row = q.get('SELECT * FROM rootfs WHERE source = ? AND origin = ? ORDER BY imported_at DESC LIMIT 1', source, origin);
        return row === undefined ? undefined : toRootfs(row);
      },
      add: async (source, rootfs, retentionMs) =>
        q.transaction(() => {
          const now = rootfs.importedAt.getTime();
          q.run('UPDATE rootfs SET expires_at = ? WHERE source = ? AND expires_at IS NULL AND layer_digest <> ?', now + retentionMs, source, rootfs.digest);
          q.run(
            `INSERT INTO rootfs (source, layer_digest, layer_size, diff_id, origin, imported_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, NULL)
             ON CONFLICT DO UPDATE SET origin = excluded.origin, imported_at = excluded.imported_at, expires_at = NULL
             WHERE rootfs.expires_at IS NOT NULL OR rootfs.origin <> excluded.origin`,
            source,
            rootfs.digest,
            rootfs.size,
            rootfs.diffId,
            rootfs.origin,
            now,
          );
        }),
    };
    this.compositions = {
      get: async (source, repository, digest, now) => {
        const row = q.get(
          `SELECT c.*, r.layer_size AS rootfs_size, r.diff_id AS rootfs_diff_id FROM compositions c
           JOIN rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
           WHERE c.source = ? AND c.repository = ? AND c.digest = ? AND ${live}`,
          source,
          repository,
          digest,
          now.getTime(),
        );
        return row === undefined ? undefined : toComposition(row);
      },
      put: async (source, composition, now) => {
        q.run(
          `INSERT INTO compositions (source, repository, digest, media_type, content, config_digest, config_size,
             rootfs_digest, droplet_layer, droplet_layer_size, droplet_diff_id, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
          source,
          composition.repository,
          composition.digest,
          composition.mediaType,
          composition.bytes,
          composition.config.digest,
          composition.config.size,
          composition.rootfs.digest,
          composition.dropletLayer.digest,
          composition.dropletLayer.size,
          composition.dropletLayer.diffId,
          now.getTime(),
        );
      },
      blobSize: async (source, repository, digest, now) =>
        q.get(
          `SELECT CASE WHEN c.config_digest = ?1 THEN c.config_size WHEN c.rootfs_digest = ?1 THEN r.layer_size ELSE c.droplet_layer_size END AS size
           FROM compositions c JOIN rootfs r ON r.source = c.source AND r.layer_digest = c.rootfs_digest
           WHERE c.source = ?2 AND c.repository = ?3 AND (c.config_digest = ?1 OR c.rootfs_digest = ?1 OR c.droplet_layer = ?1)
             AND (r.expires_at IS NULL OR r.expires_at > ?4)
           LIMIT 1`,
          digest,
          source,
          repository,
          now.getTime(),
        )?.['size'] as number | undefined,
    };
  }

  /** Opens (creating when absent) the index at `path` and brings its schema up to date. */
  static open(path: string): SqliteDropletIndex {
    return new SqliteDropletIndex(openDatabase(path, migrations));
  }

  async *retainedBlobs(now: Date): AsyncIterable<Digest> {
    const q = this.#q;
    // Forget what can no longer be read, so that it stops being retained.
    q.transaction(() => {
      q.run(
        `DELETE FROM compositions WHERE EXISTS (SELECT 1 FROM rootfs r WHERE r.source = compositions.source
           AND r.layer_digest = compositions.rootfs_digest AND r.expires_at <= ?)`,
        now.getTime(),
      );
      q.run('DELETE FROM conversions WHERE NOT EXISTS (SELECT 1 FROM droplets d WHERE d.droplet_digest = conversions.droplet_digest)');
    });
    const rows = q.all(
      `SELECT layer_digest AS digest FROM conversions
       UNION SELECT layer_digest FROM rootfs WHERE expires_at IS NULL OR expires_at > ?1
       UNION SELECT config_digest FROM compositions
       UNION SELECT droplet_layer FROM compositions`,
      now.getTime(),
    );
    for (const row of rows) yield row['digest'] as Digest;
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}

function toConversion(row: Row): Conversion {
  const conversion: Conversion = {
    dropletDigest: row['droplet_digest'] as Digest,
    layer: { digest: row['layer_digest'] as Digest, size: row['layer_size'] as number, diffId: row['diff_id'] as Digest },
  };
  if (row['start_command'] !== null) conversion.startCommand = row['start_command'] as string;
  return conversion;
}

function toStagedDroplet(row: Row): StagedDroplet {
  return { ...toConversion(row), guid: row['guid'] as string, stagedAt: new Date(row['staged_at'] as number) };
}

function toRootfs(row: Row): RootfsRecord {
  return {
    digest: row['layer_digest'] as Digest,
    size: row['layer_size'] as number,
    diffId: row['diff_id'] as Digest,
    origin: row['origin'] as string,
    importedAt: new Date(row['imported_at'] as number),
  };
}

function toComposition(row: Row): Composition {
  return {
    repository: row['repository'] as RepositoryName,
    digest: row['digest'] as Digest,
    mediaType: row['media_type'] as string,
    bytes: row['content'] as Uint8Array,
    config: { digest: row['config_digest'] as Digest, size: row['config_size'] as number },
    rootfs: { digest: row['rootfs_digest'] as Digest, size: row['rootfs_size'] as number, diffId: row['rootfs_diff_id'] as Digest },
    dropletLayer: {
      digest: row['droplet_layer'] as Digest,
      size: row['droplet_layer_size'] as number,
      diffId: row['droplet_diff_id'] as Digest,
    },
  };
}
