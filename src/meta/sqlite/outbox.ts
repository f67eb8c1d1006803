import type { OutboxRow } from '../meta-store.ts';
import type { SqliteStatements } from './database.ts';

/** Inserts event queue rows, in queue order; inside a write's transaction when there is one. */
export function insertOutbox(q: SqliteStatements, rows: readonly OutboxRow[] | undefined): void {
  if (rows === undefined || rows.length === 0) return;
  const now = Date.now();
  const insert = q.statement('INSERT INTO event_queue (webhook, body, enqueued_at, attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?)');
  for (const { webhook, body, failedOnce } of rows) {
    insert.run(webhook, body, now, failedOnce === undefined ? 0 : 1, failedOnce?.retryAt.getTime() ?? now, failedOnce?.error ?? null);
  }
}
