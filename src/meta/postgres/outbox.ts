import type pg from 'pg';
import type { OutboxRow } from '../meta-store.ts';

/**
 * Inserts event queue rows, in queue order. Inside a write's transaction it
 * goes last, so that the rows' ids are taken just before the commit.
 */
export async function insertOutbox(client: pg.Pool | pg.PoolClient, rows: readonly OutboxRow[] | undefined): Promise<void> {
  if (rows === undefined || rows.length === 0) return;
  await client.query(
    `INSERT INTO event_queue (webhook, body, enqueued_at, next_attempt_at)
     SELECT webhook, body, now(), now() FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS e(webhook, body, position) ORDER BY position`,
    [rows.map((row) => row.webhook), rows.map((row) => row.body)],
  );
}
