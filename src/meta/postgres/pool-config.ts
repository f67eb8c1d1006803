import type pg from 'pg';

/** The `metadata.postgres` settings (src/config/scale-out.ts). */
export interface PostgresSettings {
  url?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
  database?: string | undefined;
  user?: string | undefined;
  password?: string | undefined;
  ssl?: boolean | undefined;
  pool: { max: number; idleTimeout: number; connectionTimeout: number };
  statementTimeout: number;
}

/** Pool settings for `pg`: the URL first, fields over it, then the pool's own limits. */
export function poolConfig(settings: PostgresSettings): pg.PoolConfig {
  const config: pg.PoolConfig = {
    application_name: 'berth',
    max: settings.pool.max,
    idleTimeoutMillis: settings.pool.idleTimeout,
    connectionTimeoutMillis: settings.pool.connectionTimeout,
    statement_timeout: settings.statementTimeout === 0 ? false : settings.statementTimeout,
  };
  // The server's statement_timeout cannot end a query whose answer never arrives (a hung network): the client gives up a second later.
  if (settings.statementTimeout > 0) config.query_timeout = settings.statementTimeout + 1000;
  if (settings.url !== undefined) config.connectionString = settings.url;
  if (settings.host !== undefined) config.host = settings.host;
  if (settings.port !== undefined) config.port = settings.port;
  if (settings.database !== undefined) config.database = settings.database;
  if (settings.user !== undefined) config.user = settings.user;
  if (settings.password !== undefined) config.password = settings.password;
  if (settings.ssl !== undefined) config.ssl = settings.ssl;
  return config;
}
