import { setTimeout as sleep } from 'node:timers/promises';
import { isUpstreamError } from './errors.ts';

/** How often and how patiently temporary failures are retried. */
export interface RetryPolicy {
  /** Tries in all, the first included; 1 means no retry. */
  attempts: number;
  /** The first backoff; each later one doubles, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Whether 429 answers are retried (default true); a cache that can serve stale content says false. */
  retryRateLimited?: boolean;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 5, baseDelayMs: 250, maxDelayMs: 15_000 };

/** The longest Retry-After we honour; a server asking for more gets this. */
const maxRetryAfterMs = 60_000;

/**
 * Runs `work` until it succeeds, fails permanently or runs out of
 * attempts. Only UpstreamErrors marked temporary are retried; the wait is
 * the server's Retry-After when given, else exponential backoff with jitter.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  work: (attempt: number) => Promise<T>,
  options: { signal?: AbortSignal | undefined; onRetry?: (error: unknown, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await work(attempt);
    } catch (error) {
      if (!isUpstreamError(error) || !error.temporary || attempt >= policy.attempts || options.signal?.aborted === true) throw error;
      if (error.status === 429 && policy.retryRateLimited === false) throw error;
      const delay =
        error.retryAfter !== undefined ? Math.min(error.retryAfter * 1000, maxRetryAfterMs) : Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, undefined, options.signal === undefined ? {} : { signal: options.signal });
    }
  }
}

/** Retry-After as seconds (a number of seconds or an HTTP date), when present and sane. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}
