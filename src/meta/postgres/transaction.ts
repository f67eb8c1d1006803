import type pg from 'pg';

/** Lock conflicts PostgreSQL resolves by failing one side; the transaction is simply run again. */
const retryableCodes = new Set(['40001', '40P01']);
const maxAttempts = 5;

/** Runs `work` in a transaction on one pooled connection, again when PostgreSQL asks (deadlock, serialization). */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      client.release();
      return result;
    } catch (error) {
      const rolledBack = await client.query('ROLLBACK').then(
        () => true,
        () => false,
      );
      client.release(rolledBack ? undefined : true);
      if (!(attempt < maxAttempts && retryableCodes.has(errorCode(error)))) throw error;
    }
  }
}

export function errorCode(error: unknown): string {
  return typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : '';
}
