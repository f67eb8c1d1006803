import type pg from 'pg';
import type { OutboxRow } from '../meta-store.ts';

/**
 * Inserts event queue rows, in queue order. Inside a write's transaction it
 * goes last, so that the rows' ids are taken just before the commit.
 */
export async function insertOutbox(client: pg.Pool | pg.PoolClient, rows: readonly OutboxRow[] | undefined): Promise<void> {
  if (rows === undefined || rows.length === 0) return;
  await client.query(
    `INSERT INTO event_queue (webhook, body, enqueued_at, attempts, next_attempt_at, last_error)
     SELECT webhook, body, now(), attempts, COALESCE(retry_at, now()), last_error
     FROM unnest($1::text[], $2::text[], $3::int[], $4::timestamptz[], $5::text[]) WITH ORDINALITY AS e(webhook, body, attempts, retry_at, last_error, position)
     ORDER BY position`,
    [
      rows.map((row) => row.webhook),
      rows.map((row) => row.body),
      rows.map((row) => (row.failedOnce === undefined ? 0 : 1)),
      rows.map((row) => row.failedOnce?.retryAt ?? null),
      rows.map((row) => row.failedOnce?.error ?? null),
    ],
  );
}
