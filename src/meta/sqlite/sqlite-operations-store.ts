import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { DatabaseSync } from 'node:sqlite';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { BlobCollection, EventQueue, Lease, Leases, NamespaceCollection, OperationsStore, PullLog, QueuedEvent, RepositoryScope, UsageIndex } from '../operations-store.ts';
import { registerFunctions, SqliteStatements } from './database.ts';
import { insertOutbox } from './outbox.ts';
import { SqliteReadThread } from './read-thread.ts';
import { SqliteBlobCollection, SqliteNamespaceCollection } from './sqlite-collection.ts';

/** Every allowed repository name character sorts below this, so `[prefix, prefix + "~")` is the prefix's range. */
const afterNameCharacters = '~';
const scoped = (name: string) => `${name} >= :low AND ${name} < :high AND ${name} REGEXP :pattern`;

/**
 * The OperationsStore over the SqliteMetaStore's database (its tables come
 * with the MetaStore's migrations). Leases are rows that expire unless
 * renewed; on the same host, a holder whose process is gone loses at once.
 */
export class SqliteOperationsStore implements OperationsStore {
  readonly blobs: BlobCollection;
  readonly namespace: NamespaceCollection;
  readonly leases: Leases;
  readonly events: EventQueue;
  readonly usage: UsageIndex;
  readonly pulls: PullLog;
  readonly #reader: SqliteReadThread;

  /** `clock`: milliseconds since the epoch for lease expiry (default `Date.now`). */
  constructor(db: DatabaseSync, options: { leaseTtl?: number; clock?: () => number } = {}) {
    registerFunctions(db);
    const q = new SqliteStatements(db);
    this.blobs = new SqliteBlobCollection(q);
    this.namespace = new SqliteNamespaceCollection(q);
    this.leases = new SqliteLeases(q, options.leaseTtl ?? 30_000, options.clock ?? Date.now);
    this.events = sqliteEventQueue(q);
    this.#reader = new SqliteReadThread(db);
    this.usage = sqliteUsage(q, this.#reader);
    this.pulls = sqlitePullLog(q);
  }

  close(): Promise<void> {
    return this.#reader.close();
  }
}

function scopeParams(scope: RepositoryScope): { low: string; high: string; pattern: string } {
  return { low: scope.prefix, high: scope.prefix + afterNameCharacters, pattern: scope.pattern };
}

/** Usage sums and scope listings read every repository a scope matches: at scale they run on the read thread. */
function sqliteUsage(q: SqliteStatements, reader: SqliteReadThread): UsageIndex {
  const occupied = `(EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = r.id) OR EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id))`;
  return {
    usage: async (scope) => {
      const [row] = await reader.all(
        `WITH scoped AS (SELECT id FROM repositories WHERE ${scoped('name')})
         SELECT
           (SELECT COALESCE(SUM(size), 0) FROM blobs WHERE digest IN
              (SELECT rb.digest FROM repository_blobs rb WHERE rb.repository_id IN (SELECT id FROM scoped))) +
           (SELECT COALESCE(SUM(size), 0) FROM manifests WHERE repository_id IN (SELECT id FROM scoped)) AS bytes,
           (SELECT COUNT(*) FROM repositories r WHERE r.id IN (SELECT id FROM scoped) AND ${occupied}) AS repositories`,
        scopeParams(scope),
      );
      return { bytes: Number(row?.['bytes'] ?? 0), repositories: Number(row?.['repositories'] ?? 0) };
    },
    holds: async (scope, digest) =>
      q
        .statement(
          `SELECT 1 FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
           WHERE rb.digest = :digest AND ${scoped('r.name')} LIMIT 1`,
        )
        .get({ digest, ...scopeParams(scope) }) !== undefined,
    occupied: async (repository) => q.get(`SELECT 1 FROM repositories r WHERE r.name = ? AND ${occupied}`, repository) !== undefined,
    repositories: async (scope) => {
      // One newline-joined value: a million names cross the thread as one string, not a million rows.
      const [row] = await reader.all(
        `SELECT group_concat(name, char(10) ORDER BY name) AS names FROM repositories r WHERE ${scoped('r.name')} AND ${occupied}`,
        scopeParams(scope),
      );
      const names = row?.['names'];
      return typeof names === 'string' ? (names.split('\n') as RepositoryName[]) : [];
    },
  };
}

function sqliteEventQueue(q: SqliteStatements): EventQueue {
  return {
    enqueue: async (events) => {
      if (events.length > 0) q.transaction(() => insertOutbox(q, events));
    },
    head: async (webhook, limit) =>
      q.all('SELECT * FROM event_queue WHERE webhook = ? ORDER BY id LIMIT ?', webhook, limit).map(
        (row): QueuedEvent => ({
          id: row['id'] as number,
          webhook: row['webhook'] as string,
          body: row['body'] as string,
          enqueuedAt: new Date(row['enqueued_at'] as number),
          attempts: row['attempts'] as number,
          nextAttemptAt: new Date(row['next_attempt_at'] as number),
        }),
      ),
    remove: async (ids) => {
      q.run('DELETE FROM event_queue WHERE id IN (SELECT value FROM json_each(?))', JSON.stringify(ids));
    },
    postpone: async (ids, nextAttemptAt, error) => {
      q.run(
        'UPDATE event_queue SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id IN (SELECT value FROM json_each(?))',
        nextAttemptAt.getTime(),
        error.slice(0, 1000),
        JSON.stringify(ids),
      );
    },
    backlog: async () =>
      new Map(
        q
          .all(`SELECT webhook, SUM(CASE WHEN body LIKE '[%' THEN length(body) - length(replace(body, char(10), '')) + 1 ELSE 1 END) AS count FROM event_queue GROUP BY webhook`)
          .map((row) => [row['webhook'] as string, row['count'] as number]),
      ),
  };
}

function sqlitePullLog(q: SqliteStatements): PullLog {
  return {
    record: async (pulls) => {
      if (pulls.length === 0) return;
      q.transaction(() => {
        const upsert = q.statement(
          `INSERT INTO manifest_pulls (repository, digest, pulled_at) VALUES (?, ?, ?)
           ON CONFLICT DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at)`,
        );
        for (const pull of pulls) upsert.run(pull.repository, pull.digest, pull.at.getTime());
      });
    },
    lastPulls: async (repository) =>
      new Map(q.all('SELECT digest, pulled_at FROM manifest_pulls WHERE repository = ?', repository).map((row) => [row['digest'] as Digest, new Date(row['pulled_at'] as number)])),
    prune: async (cutoff) => q.run('DELETE FROM manifest_pulls WHERE pulled_at < ?', cutoff.getTime()),
  };
}

/** Lease rows: a holder renews every third of the time to live; one that stops renewing (or whose process is gone) loses. */
class SqliteLeases implements Leases {
  readonly #q: SqliteStatements;
  readonly #ttl: number;
  readonly #clock: () => number;
  readonly #host = hostname();

  constructor(q: SqliteStatements, ttl: number, clock: () => number) {
    this.#q = q;
    this.#ttl = ttl;
    this.#clock = clock;
  }

  async acquire(name: string): Promise<Lease | undefined> {
    const q = this.#q;
    const holder = randomUUID();
    const taken = q.transaction(() => {
      const row = q.get('SELECT host, pid, expires_at FROM leases WHERE name = ?', name);
      if (row !== undefined && (row['expires_at'] as number) > this.#clock() && !(row['host'] === this.#host && !processAlive(row['pid'] as number))) {
        return false;
      }
      q.run(
        `INSERT INTO leases (name, holder, host, pid, expires_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET holder = excluded.holder, host = excluded.host, pid = excluded.pid, expires_at = excluded.expires_at`,
        name,
        holder,
        this.#host,
        process.pid,
        this.#clock() + this.#ttl,
      );
      return true;
    });
    if (!taken) return undefined;
    const controller = new AbortController();
    const renew = setInterval(
      () => {
        let renewed = false;
        try {
          renewed = q.run('UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ?', this.#clock() + this.#ttl, name, holder) > 0;
        } catch {
          // The database is busy or closed: count it as lost rather than hold on blindly.
        }
        if (!renewed) {
          clearInterval(renew);
          controller.abort(new Error(`lease ${name} lost`));
        }
      },
      Math.max(Math.floor(this.#ttl / 3), 10),
    );
    renew.unref();
    return {
      signal: controller.signal,
      release: async () => {
        clearInterval(renew);
        try {
          q.run('DELETE FROM leases WHERE name = ? AND holder = ?', name, holder);
        } catch {
          // Closed already: the lease expires on its own.
        }
      },
    };
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
