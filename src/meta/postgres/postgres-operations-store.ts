import pg from 'pg';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { BlobCollection, EventQueue, Lease, Leases, NamespaceCollection, OperationsStore, PullLog, RepositoryScope, UsageIndex } from '../operations-store.ts';
import { PostgresBlobCollection, PostgresNamespaceCollection } from './postgres-collection.ts';
import { insertOutbox } from './outbox.ts';
import { inTransaction } from './transaction.ts';

type Row = Record<string, unknown>;

/** Advisory lock class of leases (see postgres-collection.ts for digests). */
const leaseLockClass = 0x6266;
/** Every allowed repository name character sorts below this, so `[prefix, prefix + "~")` is the prefix's range. */
const afterNameCharacters = '~';
const scoped = (name: string) => `${name} >= $1 AND ${name} < $2 AND ${name} ~ $3`;
const occupied = `(EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = r.id) OR EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id))`;

/**
 * The OperationsStore on the PostgresMetaStore's pool (its tables come with
 * the MetaStore's migrations). Leases are session advisory locks on one
 * connection of their own: a replica that dies releases them at once.
 */
export class PostgresOperationsStore implements OperationsStore {
  readonly blobs: BlobCollection;
  readonly namespace: NamespaceCollection;
  readonly leases: PostgresLeases;
  readonly events: EventQueue;
  readonly usage: UsageIndex;
  readonly pulls: PullLog;

  constructor(pool: pg.Pool) {
    this.blobs = new PostgresBlobCollection(pool);
    this.namespace = new PostgresNamespaceCollection(pool);
    this.leases = new PostgresLeases(pool.options);
    this.events = postgresEventQueue(pool);
    this.usage = postgresUsage(pool);
    this.pulls = postgresPullLog(pool);
  }

  close(): Promise<void> {
    return this.leases.close();
  }
}

function scopeParams(scope: RepositoryScope): string[] {
  return [scope.prefix, scope.prefix + afterNameCharacters, scope.pattern];
}

function postgresUsage(pool: pg.Pool): UsageIndex {
  return {
    usage: async (scope) => {
      const { rows } = await pool.query<Row>(
        `WITH scoped AS (SELECT id FROM repositories WHERE ${scoped('name')})
         SELECT
           (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE digest IN
              (SELECT rb.digest FROM repository_blobs rb WHERE rb.repository_id IN (SELECT id FROM scoped))) +
           (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repository_id IN (SELECT id FROM scoped)) AS bytes,
           (SELECT COUNT(*) FROM repositories r WHERE r.id IN (SELECT id FROM scoped) AND ${occupied}) AS repositories`,
        scopeParams(scope),
      );
      return { bytes: Number(rows[0]?.['bytes'] ?? 0), repositories: Number(rows[0]?.['repositories'] ?? 0) };
    },
    holds: async (scope, digest) =>
      (
        await pool.query(`SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id WHERE rb.digest = $4 AND ${scoped('r.name')} LIMIT 1`, [
          ...scopeParams(scope),
          digest,
        ])
      ).rows.length > 0,
    occupied: async (repository) => (await pool.query(`SELECT 1 FROM repositories r WHERE r.name = $1 AND ${occupied}`, [repository])).rows.length > 0,
    repositories: async (scope) =>
      (await pool.query<Row>(`SELECT name FROM repositories r WHERE ${scoped('r.name')} AND ${occupied} ORDER BY name`, scopeParams(scope))).rows.map(
        (row) => row['name'] as RepositoryName,
      ),
  };
}

function postgresEventQueue(pool: pg.Pool): EventQueue {
  return {
    enqueue: (events) => insertOutbox(pool, events),
    head: async (webhook, limit) =>
      (await pool.query<Row>('SELECT * FROM event_queue WHERE webhook = $1 ORDER BY id LIMIT $2', [webhook, limit])).rows.map((row) => ({
        id: Number(row['id']),
        webhook: row['webhook'] as string,
        body: row['body'] as string,
        enqueuedAt: row['enqueued_at'] as Date,
        attempts: row['attempts'] as number,
        nextAttemptAt: row['next_attempt_at'] as Date,
      })),
    remove: async (ids) => {
      await pool.query('DELETE FROM event_queue WHERE id = ANY($1::bigint[])', [ids]);
    },
    postpone: async (ids, nextAttemptAt, error) => {
      await pool.query('UPDATE event_queue SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE id = ANY($1::bigint[])', [
        ids,
        nextAttemptAt,
        error.slice(0, 1000),
      ]);
    },
    backlog: async () =>
      new Map(
        (
          await pool.query<Row>(
            `SELECT webhook, SUM(CASE WHEN left(body, 1) = '[' THEN length(body) - length(replace(body, E'\\n', '')) + 1 ELSE 1 END) AS count FROM event_queue GROUP BY webhook`,
          )
        ).rows.map((row) => [row['webhook'] as string, Number(row['count'])]),
      ),
  };
}

function postgresPullLog(pool: pg.Pool): PullLog {
  return {
    record: async (pulls) => {
      if (pulls.length === 0) return;
      // One row per key: ON CONFLICT DO UPDATE may not touch a row twice in one statement.
      const latest = new Map<string, { repository: RepositoryName; digest: Digest; at: Date }>();
      for (const pull of pulls) {
        const key = `${pull.repository}@${pull.digest}`;
        const seen = latest.get(key);
        if (seen === undefined || seen.at < pull.at) latest.set(key, pull);
      }
      const rows = [...latest.values()];
      await inTransaction(pool, (client) =>
        client.query(
          `INSERT INTO manifest_pulls (repository, digest, pulled_at) SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
           ON CONFLICT (repository, digest) DO UPDATE SET pulled_at = GREATEST(manifest_pulls.pulled_at, excluded.pulled_at)`,
          [rows.map((row) => row.repository), rows.map((row) => row.digest), rows.map((row) => row.at)],
        ),
      );
    },
    lastPulls: async (repository) =>
      new Map(
        (await pool.query<Row>('SELECT digest, pulled_at FROM manifest_pulls WHERE repository = $1', [repository])).rows.map((row) => [
          row['digest'] as Digest,
          row['pulled_at'] as Date,
        ]),
      ),
    prune: async (cutoff) => (await pool.query('DELETE FROM manifest_pulls WHERE pulled_at < $1', [cutoff])).rowCount ?? 0,
  };
}

/**
 * Leases as session advisory locks, all on one dedicated connection (not a
 * pooled one, which would be lent to requests while holding them). When the
 * connection breaks every lease is lost and its holders are told.
 */
class PostgresLeases implements Leases {
  readonly #options: pg.ClientConfig;
  readonly #held = new Map<string, AbortController>();
  #client: Promise<pg.Client> | undefined;
  #closed = false;

  constructor(options: pg.ClientConfig) {
    this.#options = options;
  }

  async acquire(name: string): Promise<Lease | undefined> {
    if (this.#held.has(name) || this.#closed) return undefined;
    const client = await this.#connection();
    const { rows } = await client.query<Row>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken', [leaseLockClass, name]);
    if (rows[0]?.['taken'] !== true) return undefined;
    const controller = new AbortController();
    this.#held.set(name, controller);
    return {
      signal: controller.signal,
      release: async () => {
        if (this.#held.get(name) !== controller) return;
        this.#held.delete(name);
        if (controller.signal.aborted) return;
        await client.query('SELECT pg_advisory_unlock($1, hashtext($2))', [leaseLockClass, name]).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    this.#loseAll(new Error('the metadata store is closing'));
    await client?.then((connected) => connected.end()).catch(() => undefined);
  }

  #connection(): Promise<pg.Client> {
    this.#client ??= (async () => {
      const client = new pg.Client({ ...this.#options, application_name: 'berth-leases' });
      const lost = (error: Error) => {
        if (this.#client === connecting) this.#client = undefined;
        this.#loseAll(error);
      };
      client.on('error', lost);
      client.on('end', () => lost(new Error('the lease connection closed')));
      await client.connect();
      return client;
    })();
    const connecting = this.#client;
    connecting.catch(() => {
      if (this.#client === connecting) this.#client = undefined;
    });
    return connecting;
  }

  #loseAll(reason: Error): void {
    for (const controller of this.#held.values()) controller.abort(reason);
    this.#held.clear();
  }
}
