// The worker side of SqliteReadThread: one read-only connection, queries in arrival order.
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { parentPort, workerData } from 'node:worker_threads';
import { registerFunctions } from './database.ts';

const db = new DatabaseSync((workerData as { path: string }).path, { readOnly: true, timeout: 5000 });
registerFunctions(db);
const statements = new Map<string, StatementSync>();

parentPort?.on('message', ({ id, sql, params }: { id: number; sql: string; params: Record<string, string | number | null> }) => {
  try {
    let statement = statements.get(sql);
    if (statement === undefined) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    parentPort?.postMessage({ id, rows: statement.all(params) });
  } catch (error) {
    parentPort?.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
