import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import type {
  BlobLinks,
  ManifestIndex,
  ManifestRecord,
  ManifestReferences,
  MetaStore,
  Page,
  RepositoryIndex,
  TagIndex,
  UploadSession,
  UploadSessions,
  WriteOptions,
} from '../meta-store.ts';
import { fixedAmong, fixedTagMoved, type ManifestReference, manifestRecordFromRow, missingReferences, referrerFromRow } from '../rows.ts';
import { postgresMigrations } from './migrations.ts';
import { insertOutbox } from './outbox.ts';
import { inTransaction } from './transaction.ts';

type Row = Record<string, unknown>;
/** A pooled connection or the pool itself: both run queries. */
type Queryable = pg.Pool | pg.PoolClient;

/** Any fixed number: it only has to be the same for every Berth sharing a database. */
const migrationLockKey = 0x6265727468;

/**
 * The shared MetaStore: PostgreSQL, for several Berth replicas at once.
 * Same tables and semantics as SQLite; where SQLite serialises writers,
 * this takes row locks (FOR SHARE on what a manifest references, so a
 * concurrent unlink cannot slip under it) and relies on upserts.
 */
export class PostgresMetaStore implements MetaStore {
  readonly repositories: RepositoryIndex;
  readonly blobs: BlobLinks;
  readonly manifests: ManifestIndex;
  readonly tags: TagIndex;
  readonly uploads: UploadSessions;
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
    this.repositories = {
      exists: async (repository) => (await this.#rows('SELECT 1 FROM repositories WHERE name = $1', [repository])).length > 0,
      list: async (page) =>
        splitNames<RepositoryName>(
          await this.#rows(
            `SELECT string_agg(name, E'\\n' ORDER BY name) AS names FROM (
               SELECT name FROM repositories r
               WHERE name > $1 AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id)
               ORDER BY name LIMIT $2) AS page`,
            [page.last ?? '', page.limit ?? null],
          ),
        ),
    };
    this.blobs = {
      linkedSize: async (repository, digest) =>
        (
          await this.#rows(
            `SELECT b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2`,
            [repository, digest],
          )
        )[0]?.['size'] as number | undefined,
      linkedIn: async (digest, limit) =>
        (
          await this.#rows('SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id WHERE rb.digest = $1 ORDER BY r.name LIMIT $2', [digest, limit])
        ).map((row) => row['name'] as RepositoryName),
      storedSize: async (digest) => (await this.#rows('SELECT size FROM blobs WHERE digest = $1', [digest]))[0]?.['size'] as number | undefined,
      link: (repository, digest, size) =>
        this.#transaction(async (client) => {
          const repositoryId = await ensureRepository(client, repository);
          await client.query('INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, now()) ON CONFLICT DO NOTHING', [digest, size]);
          await client.query(
            `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, now())
             ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
            [repositoryId, digest],
          );
        }),
      unlink: (repository, digest, options) =>
        this.#changing('DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2', [repository, digest], options),
    };
    this.manifests = {
      get: (repository, reference) => this.#manifest(repository, reference),
      put: (repository, manifest, references, tags, options) =>
        this.#transaction(async (client) => {
          await putManifest(client, repository, manifest, references, tags, fixedAmong(tags, options), options?.referencesPending !== true);
          await insertOutbox(client, options?.outbox);
        }),
      delete: (repository, digest, options) =>
        this.#transaction(async (client) => {
          const found = await client.query('SELECT id FROM repositories WHERE name = $1', [repository]);
          const repositoryId = found.rows[0]?.['id'] as number | undefined;
          if (repositoryId === undefined) return false;
          await client.query('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [repositoryId, digest]);
          await client.query('DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2', [repositoryId, digest]);
          const removed = ((await client.query('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [repositoryId, digest])).rowCount ?? 0) > 0;
          if (removed) await insertOutbox(client, options?.outbox);
          return removed;
        }),
      referrers: (repository, subject, artifactType, page = {}) => this.#referrers(repository, subject, artifactType, page),
    };
    this.tags = {
      list: async (repository, page) =>
        splitNames<Tag>(
          await this.#rows(
            `SELECT string_agg(name, E'\\n' ORDER BY name) AS names FROM (
               SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
               WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3) AS page`,
            [repository, page.last ?? '', page.limit ?? null],
          ),
        ),
      delete: (repository, tag, options) =>
        this.#changing('DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2', [repository, tag], options),
      version: async (repository) => {
        const version = (await this.#rows('SELECT tag_version FROM repositories WHERE name = $1', [repository]))[0]?.['tag_version'];
        return version === undefined ? undefined : String(version);
      },
    };
    this.uploads = {
      create: async (session) => {
        await this.#pool.query('INSERT INTO uploads (id, repository, size, started_at, updated_at, owner) VALUES ($1, $2, $3, $4, $5, $6)', [
          session.id,
          session.repository,
          session.size,
          session.startedAt,
          session.updatedAt,
          session.owner ?? null,
        ]);
      },
      get: async (id) => {
        const row = (await this.#rows('SELECT * FROM uploads WHERE id = $1', [id]))[0];
        return row === undefined ? undefined : toUploadSession(row);
      },
      // The database's clock, so that replicas with drifting clocks agree on staleness.
      advance: async (id, from, to) => (await this.#count('UPDATE uploads SET size = $3, updated_at = now() WHERE id = $1 AND size = $2', [id, from, to])) > 0,
      delete: async (id) => (await this.#count('DELETE FROM uploads WHERE id = $1', [id])) > 0,
      staleSince: async (cutoff) => (await this.#rows('SELECT * FROM uploads WHERE updated_at < $1 ORDER BY updated_at', [cutoff])).map(toUploadSession),
      count: async () => Number((await this.#rows('SELECT count(*) AS n FROM uploads', []))[0]?.['n']),
    };
  }

  /** Connects, and brings the schema up to date (safe when several replicas start at once). */
  static async open(config: pg.PoolConfig): Promise<PostgresMetaStore> {
    const types = new pg.TypeOverrides();
    // Sizes are BIGINT; JavaScript numbers hold them exactly up to 2^53.
    types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
    const pool = new pg.Pool({ ...config, types });
    // An idle connection that breaks is dropped by the pool; without a listener it would crash the process.
    pool.on('error', () => undefined);
    // So does a connection that breaks while checked out between two queries (a server crash
    // mid-transaction): its next query fails instead, and the request answers 503.
    pool.on('connect', (client) => client.on('error', () => undefined));
    try {
      await migrate(pool);
    } catch (error) {
      await pool.end();
      throw new Error(`cannot open the PostgreSQL metadata store: ${(error as Error).message}`, { cause: error });
    }
    return new PostgresMetaStore(pool);
  }

  /** The pool, for modules that extend the store with their own tables (GC, events). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /** One round trip on a pooled connection, given up after the signal (the connection is then dropped). */
  async ping(signal?: AbortSignal): Promise<void> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await abortable(client.query('SELECT 1'), signal);
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (!this.#pool.ended) await this.#pool.end();
  }

  async #rows(sql: string, params: unknown[]): Promise<Row[]> {
    return (await this.#pool.query<Row>(prepared(sql, params))).rows;
  }

  async #count(sql: string, params: unknown[]): Promise<number> {
    return (await this.#pool.query(prepared(sql, params))).rowCount ?? 0;
  }

  #transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, work);
  }

  /** A one-statement removal, in one transaction with its outbox rows when it has any (written only when it removed something). */
  async #changing(sql: string, params: unknown[], options: WriteOptions | undefined): Promise<boolean> {
    const outbox = options?.outbox ?? [];
    if (outbox.length === 0) return (await this.#count(sql, params)) > 0;
    return this.#transaction(async (client) => {
      const removed = ((await client.query(prepared(sql, params))).rowCount ?? 0) > 0;
      if (removed) await insertOutbox(client, outbox);
      return removed;
    });
  }

  async #manifest(repository: RepositoryName, reference: Reference): Promise<ManifestRecord | undefined> {
    const rows =
      reference.kind === 'digest'
        ? await this.#rows('SELECT m.* FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE r.name = $1 AND m.digest = $2', [repository, reference.digest])
        : await this.#rows(
            `SELECT m.* FROM tags t JOIN repositories r ON r.id = t.repository_id
             JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
             WHERE r.name = $1 AND t.name = $2`,
            [repository, reference.tag],
          );
    const row = rows[0];
    return row === undefined ? undefined : manifestRecordFromRow(row);
  }

  async #referrers(repository: RepositoryName, subject: Digest, artifactType: string | undefined, page: Page): Promise<Descriptor[]> {
    const rows = await this.#rows(
      `SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations
       FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3) AND m.digest > $4
       ORDER BY m.digest LIMIT $5`,
      [repository, subject, artifactType ?? null, page.last ?? '', page.limit ?? null],
    );
    return rows.map(referrerFromRow);
  }
}

async function migrate(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    // Replicas starting together queue here; the first applies, the others find nothing left to do.
    await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLockKey]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)');
    const applied = ((await client.query('SELECT MAX(version) AS version FROM schema_migrations')).rows[0]?.['version'] as number | null) ?? 0;
    if (applied > postgresMigrations.length) {
      throw new Error(`the database schema (version ${applied}) is newer than this Berth (version ${postgresMigrations.length})`);
    }
    for (let version = applied + 1; version <= postgresMigrations.length; version++) {
      await client.query(postgresMigrations[version - 1] as string);
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())', [version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

async function ensureRepository(client: Queryable, repository: RepositoryName): Promise<number> {
  const inserted = await client.query('INSERT INTO repositories (name, created_at) VALUES ($1, now()) ON CONFLICT DO NOTHING RETURNING id', [repository]);
  const id = inserted.rows[0]?.['id'] as number | undefined;
  if (id !== undefined) return id;
  // READ COMMITTED: this statement sees the row a concurrent transaction just committed.
  return (await client.query('SELECT id FROM repositories WHERE name = $1', [repository])).rows[0]?.['id'] as number;
}

async function putManifest(
  client: pg.PoolClient,
  repository: RepositoryName,
  manifest: ManifestRecord,
  references: ManifestReferences,
  tags: readonly Tag[],
  fixedTags: readonly Tag[],
  checkReferences = true,
): Promise<void> {
  const repositoryId = await ensureRepository(client, repository);
  if (checkReferences) {
    // FOR SHARE: what the manifest references stays in the repository until this commits.
    const blobs = await client.query('SELECT digest FROM repository_blobs WHERE repository_id = $1 AND digest = ANY($2::text[]) ORDER BY digest FOR SHARE', [
      repositoryId,
      references.blobs,
    ]);
    const children = await client.query('SELECT digest FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[]) ORDER BY digest FOR SHARE', [
      repositoryId,
      references.children,
    ]);
    // Two set lookups whatever the number of references; every missing one is named.
    const unknown = missingReferences([...absent('blob', references.blobs, blobs.rows), ...absent('manifest', references.children, children.rows)]);
    if (unknown !== undefined) throw unknown;
  }
  // DO UPDATE, not DO NOTHING: the row stays locked until this commits, so
  // a collector deleting the manifest waits for (and then sees) the tags
  // and references written here; a push again also restarts its grace period.
  await client.query(
    `INSERT INTO manifests (repository_id, digest, media_type, content, size, subject, artifact_type, annotations, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now()) ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at`,
    [
      repositoryId,
      manifest.digest,
      manifest.mediaType,
      Buffer.from(manifest.bytes.buffer, manifest.bytes.byteOffset, manifest.bytes.byteLength),
      manifest.bytes.byteLength,
      manifest.subject ?? null,
      manifest.artifactType ?? null,
      manifest.annotations === undefined ? null : JSON.stringify(manifest.annotations),
    ],
  );
  const targets = [...references.blobs, ...references.children];
  const kinds = [...references.blobs.map(() => 'blob'), ...references.children.map(() => 'manifest')];
  await client.query(
    `INSERT INTO manifest_references (repository_id, manifest_digest, target, kind)
     SELECT $1, $2, target, kind FROM unnest($3::text[], $4::text[]) AS r(target, kind) ON CONFLICT DO NOTHING`,
    [repositoryId, manifest.digest, targets, kinds],
  );
  if (fixedTags.length > 0) await claimFixedTags(client, repositoryId, manifest.digest, fixedTags);
  // Sorted, so that two requests moving the same tags lock them in the same order.
  const sortedTags = [...new Set(tags)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  await client.query(
    `INSERT INTO tags (repository_id, name, digest, updated_at)
     SELECT $1, name, $3, now() FROM unnest($2::text[]) WITH ORDINALITY AS t(name, position) ORDER BY position
     ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
    [repositoryId, sortedTags, manifest.digest],
  );
}

/**
 * Creates the fixed tags that do not exist yet without moving any that do
 * (a concurrent creator makes this wait, then find its row), and refuses
 * when one names another manifest.
 */
async function claimFixedTags(client: pg.PoolClient, repositoryId: number, digest: Digest, fixedTags: readonly Tag[]): Promise<void> {
  const sorted = [...new Set(fixedTags)].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  await client.query(
    `INSERT INTO tags (repository_id, name, digest, updated_at)
     SELECT $1, name, $3, now() FROM unnest($2::text[]) WITH ORDINALITY AS t(name, position) ORDER BY position ON CONFLICT DO NOTHING`,
    [repositoryId, sorted, digest],
  );
  const current = await client.query('SELECT name, digest FROM tags WHERE repository_id = $1 AND name = ANY($2::text[]) ORDER BY name FOR UPDATE', [repositoryId, sorted]);
  const moved = current.rows.find((row: Row) => row['digest'] !== digest);
  if (moved !== undefined) throw fixedTagMoved(moved['name'] as string, moved['digest'] as string);
}

/** The wanted references a lookup did not find, in the manifest's order. */
function absent(kind: 'blob' | 'manifest', wanted: readonly Digest[], found: Row[]): ManifestReference[] {
  const present = new Set(found.map((row) => row['digest'] as string));
  return wanted.filter((digest) => !present.has(digest)).map((digest) => ({ kind, digest }));
}

const statementNames = new Map<string, string>();

/**
 * A named statement: each connection parses and plans it once, then only
 * binds values, which takes a good share off the single-row lookups every
 * pull makes.
 */
function prepared(text: string, values: unknown[]): pg.QueryConfig {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `berth_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
    statementNames.set(text, name);
  }
  return { name, text, values };
}

function toUploadSession(row: Row): UploadSession {
  return {
    id: row['id'] as string,
    repository: row['repository'] as RepositoryName,
    size: row['size'] as number,
    startedAt: row['started_at'] as Date,
    updatedAt: row['updated_at'] as Date,
    ...(typeof row['owner'] === 'string' ? { owner: row['owner'] } : {}),
  };
}

/** Names aggregated into one newline-separated value (one row to transfer and parse, not one per name). */
function splitNames<T extends string>(rows: Row[]): T[] {
  const names = rows[0]?.['names'];
  return typeof names === 'string' ? (names.split('\n') as T[]) : [];
}

/** `work`, or a rejection as soon as `signal` aborts. */
function abortable<T>(work: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return work;
  work.catch(() => undefined);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
