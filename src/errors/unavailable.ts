// A dependency (the metadata database or the blob store) that cannot be
// reached is not a bug in Berth: the client is told to retry later (503 with
// Retry-After), the operator gets one line naming the dependency.
import { RegistryError } from './registry-error.ts';

/** The dependencies a request can find unavailable, as named to clients, logs and metrics. */
export const dependencies = { metadata: 'metadata database', blobs: 'blob store' } as const;
export type Dependency = keyof typeof dependencies;

/** Seconds a client is asked to wait before retrying. */
export const retryAfterSeconds = 5;

/**
 * The answer to a request that needs an unavailable dependency. The spec's
 * error table has no code for "unavailable"; TOOMANYREQUESTS is its only
 * code meaning "retry later", so it goes with status 503 and Retry-After,
 * and the message and detail say which dependency is missing.
 */
export function unavailable(dependency: Dependency, cause?: unknown): RegistryError {
  return new RegistryError('TOOMANYREQUESTS', `the registry's ${dependencies[dependency]} is unavailable; try again later`, {
    status: 503,
    headers: { 'retry-after': String(retryAfterSeconds) },
    detail: { unavailable: dependency },
    cause,
  });
}

/** The dependency a 503 from `unavailable` names, or undefined for any other error. */
export function unavailableDependency(error: RegistryError): Dependency | undefined {
  if (error.status !== 503 || typeof error.detail !== 'object' || error.detail === null) return undefined;
  const named = (error.detail as { unavailable?: unknown }).unavailable;
  return named === 'metadata' || named === 'blobs' ? named : undefined;
}

/** Connection failures of Node's sockets: the server is down, restarting, or unreachable. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOENT', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/** Messages of the `pg` driver and its pool when the server goes away, hangs, or has no connection free. */
const postgresMessages = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Query read timeout/,
  /is not queryable/,
  /^Client has encountered a connection error/,
];

/**
 * Whether `error` says the metadata database cannot be reached: a socket
 * that failed, a `pg` connection or pool timeout, a PostgreSQL error of the
 * connection classes (08…, 57P01–57P03 shutting down or starting, 53300 too
 * many connections, 57014 statement timeout), or SQLite busy or locked.
 */
export function isMetadataUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const { code, errcode, syscall } = error as Error & { code?: unknown; errcode?: unknown; syscall?: unknown };
  if (typeof code === 'string') {
    // A file that is missing is no outage: only sockets count.
    if (networkCodes.has(code) && (syscall === 'connect' || (code !== 'ENOENT' && (syscall === 'read' || syscall === 'write')))) return true;
    if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300', '57014'].includes(code)) return 'severity' in error;
    // SQLITE_BUSY, SQLITE_LOCKED
    if (code === 'ERR_SQLITE_ERROR' && (errcode === 5 || errcode === 6)) return true;
  }
  return postgresMessages.some((pattern) => pattern.test(error.message));
}
