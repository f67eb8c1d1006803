import { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { unavailable } from '../../errors/unavailable.ts';

type Send = (command: { input?: unknown }, options?: { abortSignal?: AbortSignal }) => Promise<unknown>;

/** Socket failures: the store is down, restarting or unreachable. */
const networkCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ECONNABORTED']);

/**
 * Makes every request of `client` either answer within `timeoutMs` (until
 * the response headers; bodies stream as slowly as they need) or fail as
 * "blob store unavailable" (503 with Retry-After), as do refused
 * connections and the store's own 5xx answers. A store that accepts
 * connections but never answers thus costs a request `timeoutMs`, not
 * forever, and the connection is dropped. Requests whose body streams
 * from a client get no timeout: that client sets the pace.
 */
export function guardClient(client: S3Client, timeoutMs: number): void {
  const send = client.send.bind(client) as Send;
  const guarded: Send = async (command, options = {}) => {
    const callerSignal = options.abortSignal;
    const body = (command.input as { Body?: unknown } | undefined)?.Body;
    const timed = timeoutMs > 0 && !(body instanceof Readable);
    const timeout = new AbortController();
    const timer = timed ? setTimeout(() => timeout.abort(), timeoutMs) : undefined;
    const signal = callerSignal === undefined ? timeout.signal : AbortSignal.any([callerSignal, timeout.signal]);
    try {
      return await send(command, { ...options, abortSignal: signal });
    } catch (error) {
      if (callerSignal?.aborted === true) throw error;
      if (timeout.signal.aborted || isOutage(error)) throw unavailable('blobs', error);
      throw error;
    } finally {
      clearTimeout(timer);
    }
  };
  (client as unknown as { send: Send }).send = guarded;
}

function isOutage(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code === 'string' && networkCodes.has(code)) return true;
  if (error.name === 'TimeoutError') return true;
  const status = (error as Error & { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return status === 500 || status === 502 || status === 503 || status === 504;
}
