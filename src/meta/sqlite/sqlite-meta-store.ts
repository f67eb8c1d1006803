import type { DatabaseSync, SQLInputValue } from 'node:sqlite';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import type {
  BlobLinks,
  ManifestIndex,
  ManifestRecord,
  ManifestReferences,
  MetaStore,
  OutboxRow,
  Page,
  RepositoryIndex,
  TagIndex,
  UploadSession,
  UploadSessions,
  WriteOptions,
} from '../meta-store.ts';
import { fixedAmong, fixedTagMoved, type ManifestReference, manifestRecordFromRow, missingReferences, referrerFromRow } from '../rows.ts';
import { openDatabase, SqliteStatements, type Row } from './database.ts';
import { ReadCache } from './read-cache.ts';
import { insertOutbox } from './outbox.ts';
import { sqliteMigrations } from './migrations.ts';

/**
 * The embedded MetaStore: one SQLite file in WAL mode. node:sqlite is
 * synchronous, so each method runs to completion without interleaving;
 * transactions still guard against other processes (`berth gc`).
 */
export class SqliteMetaStore implements MetaStore {
  readonly repositories: RepositoryIndex;
  readonly blobs: BlobLinks;
  readonly manifests: ManifestIndex;
  readonly tags: TagIndex;
  readonly uploads: UploadSessions;
  readonly #db: DatabaseSync;

  private constructor(db: DatabaseSync) {
    this.#db = db;
    const q = new Queries(db);
    // Every manifest and blob HEAD, and tag lists, ask these; see ReadCache for why a remembered answer is still current.
    const cache = new ReadCache(db);
    this.repositories = {
      exists: async (repository) => q.repositoryId(repository) !== undefined,
      list: async (page) =>
        splitNames<RepositoryName>(
          q.get(
            `SELECT group_concat(name, char(10) ORDER BY name) AS names FROM (
               SELECT name FROM repositories r
               WHERE name > ? AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
               ORDER BY name LIMIT ?)`,
            page.last ?? '',
            limitOf(page),
          ),
        ),
    };
    this.blobs = {
      linkedSize: async (repository, digest) =>
        cache.get(
          `blob\n${repository}\n${digest}`,
          () =>
            q.get(
              `SELECT b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
               JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?`,
              repository,
              digest,
            )?.['size'] as number | undefined,
          () => 16,
        ),
      linkedIn: async (digest, limit) =>
        q
          .all('SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id WHERE rb.digest = ? ORDER BY r.name LIMIT ?', digest, limit)
          .map((row) => row['name'] as RepositoryName),
      storedSize: async (digest) => q.get('SELECT size FROM blobs WHERE digest = ?', digest)?.['size'] as number | undefined,
      link: async (repository, digest, size) =>
        q.transaction(() => {
          const now = Date.now();
          const repositoryId = q.ensureRepository(repository, now);
          q.run('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING', digest, size, now);
          q.run(
            `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)
             ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at`,
            repositoryId,
            digest,
            now,
          );
        }),
      unlink: async (repository, digest, options) =>
        q.changing(options, () => q.run('DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?', repository, digest) > 0),
    };
    this.manifests = {
      get: async (repository, reference) =>
        cache.get(
          `manifest\n${repository}\n${reference.kind === 'tag' ? reference.tag : reference.digest}`,
          () => q.manifest(repository, reference),
          (record) => record.bytes.byteLength + 256,
        ),
      put: async (repository, manifest, references, tags, options) =>
        q.transaction(() => {
          q.putManifest(repository, manifest, references, tags, fixedAmong(tags, options), options?.referencesPending !== true);
          q.outbox(options?.outbox);
        }),
      delete: async (repository, digest, options) =>
        q.transaction(() => {
          const repositoryId = q.repositoryId(repository);
          if (repositoryId === undefined) return false;
          q.run('DELETE FROM tags WHERE repository_id = ? AND digest = ?', repositoryId, digest);
          q.run('DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?', repositoryId, digest);
          const removed = q.run('DELETE FROM manifests WHERE repository_id = ? AND digest = ?', repositoryId, digest) > 0;
          if (removed) q.outbox(options?.outbox);
          return removed;
        }),
      referrers: async (repository, subject, artifactType, page = {}) => q.referrers(repository, subject, artifactType, page),
    };
    this.tags = {
      list: async (repository, page) => {
        const names = cache.get(
          `tags\n${repository}\n${page.last ?? ''}\n${limitOf(page)}`,
          () =>
            q.get(
              `SELECT group_concat(name, char(10) ORDER BY name) AS names FROM (
                 SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
                 WHERE r.name = ? AND t.name > ? ORDER BY t.name LIMIT ?)`,
              repository,
              page.last ?? '',
              limitOf(page),
            )?.['names'] ?? null,
          (text) => (typeof text === 'string' ? text.length : 8),
        );
        return splitNames<Tag>({ names: names ?? null });
      },
      delete: async (repository, tag, options) =>
        q.changing(options, () => q.run('DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ?', repository, tag) > 0),
      version: async (repository) => {
        const version = q.get('SELECT tag_version FROM repositories WHERE name = ?', repository)?.['tag_version'];
        return version === undefined ? undefined : String(version);
      },
    };
    this.uploads = {
      create: async (session) => {
        q.run(
          'INSERT INTO uploads (id, repository, size, started_at, updated_at, owner) VALUES (?, ?, ?, ?, ?, ?)',
          session.id,
          session.repository,
          session.size,
          session.startedAt.getTime(),
          session.updatedAt.getTime(),
          session.owner ?? null,
        );
      },
      get: async (id) => {
        const row = q.get('SELECT * FROM uploads WHERE id = ?', id);
        return row === undefined ? undefined : toUploadSession(row);
      },
      advance: async (id, from, to) => q.run('UPDATE uploads SET size = ?, updated_at = ? WHERE id = ? AND size = ?', to, Date.now(), id, from) > 0,
      delete: async (id) => q.run('DELETE FROM uploads WHERE id = ?', id) > 0,
      staleSince: async (cutoff) => q.all('SELECT * FROM uploads WHERE updated_at < ? ORDER BY updated_at', cutoff.getTime()).map(toUploadSession),
      count: async () => q.get('SELECT count(*) AS n FROM uploads')?.['n'] as number,
    };
  }

  /** Opens (creating when absent) the database at `path` and brings its schema up to date. */
  static open(path: string): SqliteMetaStore {
    return new SqliteMetaStore(openDatabase(path, sqliteMigrations));
  }

  /** The database, for modules that extend the store with their own tables (GC, events). */
  get database(): DatabaseSync {
    return this.#db;
  }

  async ping(): Promise<void> {
    this.#db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}

class Queries extends SqliteStatements {
  /** Runs a one-statement removal in one transaction with its outbox rows, which are written only when it removed something. */
  changing(options: WriteOptions | undefined, remove: () => boolean): boolean {
    const outbox = options?.outbox ?? [];
    if (outbox.length === 0) return remove();
    return this.transaction(() => {
      const removed = remove();
      if (removed) this.outbox(outbox);
      return removed;
    });
  }

  outbox(rows: readonly OutboxRow[] | undefined): void {
    insertOutbox(this, rows);
  }

  repositoryId(repository: RepositoryName): number | undefined {
    return this.get('SELECT id FROM repositories WHERE name = ?', repository)?.['id'] as number | undefined;
  }

  ensureRepository(repository: RepositoryName, now: number): number {
    this.run('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING', repository, now);
    return this.repositoryId(repository) as number;
  }

  manifest(repository: RepositoryName, reference: Reference): ManifestRecord | undefined {
    const row =
      reference.kind === 'digest'
        ? this.get(`SELECT m.* FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?`, repository, reference.digest)
        : this.get(
            `SELECT m.* FROM tags t JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
             WHERE r.name = ? AND t.name = ?`,
            repository,
            reference.tag,
          );
    return row === undefined ? undefined : manifestRecordFromRow(row);
  }

  putManifest(repository: RepositoryName, manifest: ManifestRecord, references: ManifestReferences, tags: readonly Tag[], fixedTags: readonly Tag[], checkReferences = true): void {
    const now = Date.now();
    const repositoryId = this.ensureRepository(repository, now);
    for (const tag of fixedTags) {
      const current = this.get('SELECT digest FROM tags WHERE repository_id = ? AND name = ?', repositoryId, tag)?.['digest'];
      if (typeof current === 'string' && current !== manifest.digest) throw fixedTagMoved(tag, current);
    }
    if (checkReferences) {
      // In-process indexed lookups: no round trips, so one per reference costs microseconds.
      const missing: ManifestReference[] = [];
      for (const digest of references.blobs) {
        if (this.get('SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?', repositoryId, digest) === undefined) missing.push({ kind: 'blob', digest });
      }
      for (const digest of references.children) {
        if (this.get('SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?', repositoryId, digest) === undefined) missing.push({ kind: 'manifest', digest });
      }
      const unknown = missingReferences(missing);
      if (unknown !== undefined) throw unknown;
    }
    // A push again counts as new: garbage collection's grace period runs from the latest push.
    this.run(
      `INSERT INTO manifests (repository_id, digest, media_type, content, size, subject, artifact_type, annotations, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET created_at = excluded.created_at`,
      repositoryId,
      manifest.digest,
      manifest.mediaType,
      manifest.bytes,
      manifest.bytes.byteLength,
      manifest.subject ?? null,
      manifest.artifactType ?? null,
      manifest.annotations === undefined ? null : JSON.stringify(manifest.annotations),
      now,
    );
    const insertReference = this.statement('INSERT INTO manifest_references (repository_id, manifest_digest, target, kind) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING');
    for (const digest of references.blobs) insertReference.run(repositoryId, manifest.digest, digest, 'blob');
    for (const digest of references.children) insertReference.run(repositoryId, manifest.digest, digest, 'manifest');
    const upsertTag = this.statement(
      `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
    );
    for (const tag of tags) upsertTag.run(repositoryId, tag, manifest.digest, now);
  }

  referrers(repository: RepositoryName, subject: Digest, artifactType: string | undefined, page: Page): Descriptor[] {
    const filter = artifactType === undefined ? '' : 'AND m.artifact_type = ?';
    const params: SQLInputValue[] = artifactType === undefined ? [repository, subject] : [repository, subject, artifactType];
    return this.all(
      `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
       FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE r.name = ? AND m.subject = ? ${filter} AND m.digest > ? ORDER BY m.digest LIMIT ?`,
      ...params,
      page.last ?? '',
      limitOf(page),
    ).map(referrerFromRow);
  }
}

/**
 * Names aggregated into one newline-separated string: one value instead of
 * a row object per name, which for a 10,000-name list is several times
 * faster and leaves the garbage collector far less. Names cannot hold "\n".
 */
function splitNames<T extends string>(row: Row | undefined): T[] {
  const names = row?.['names'];
  return typeof names === 'string' ? (names.split('\n') as T[]) : [];
}

function limitOf(page: Page): number {
  return page.limit ?? -1;
}

function toUploadSession(row: Row): UploadSession {
  return {
    id: row['id'] as string,
    repository: row['repository'] as RepositoryName,
    size: row['size'] as number,
    startedAt: new Date(row['started_at'] as number),
    updatedAt: new Date(row['updated_at'] as number),
    ...(typeof row['owner'] === 'string' ? { owner: row['owner'] } : {}),
  };
}
