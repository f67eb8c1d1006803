/** What one worker's cache tells the same cache in the other workers (times in ms since the epoch). */
export type UpstreamNews =
  | { kind: 'reading'; remaining: number; limit?: number; sentAt: number; readAt: number }
  | { kind: 'blocked'; until: number }
  | { kind: 'resting'; until: number };

/** Now, in milliseconds since the epoch with sub-millisecond resolution: comparable across threads. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** How long a "near the limit" reading holds when no later answer updates it. */
const readingLifetimeMs = 5 * 60_000;

/**
 * What the upstream said about its rate limit: Docker Hub's
 * `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` on
 * each answer, and `Retry-After` on a 429. Near the limit, a cache serves
 * its cached tags without re-checking them, so the pulls left go to images
 * it does not have; after a 429, it does not ask again before Retry-After.
 */
export class UpstreamRateLimit {
  readonly #reserve: number;
  readonly #now: () => number;
  #limit: number | undefined;
  #remaining: number | undefined;
  #readAt = 0;
  /** When the request whose reading is held was sent: an answer to an earlier request is older news. */
  #readingSentAt = Number.NEGATIVE_INFINITY;
  #blockedUntil = 0;

  /** `reserve`: the fraction of the limit kept for uncached content (0.1: the last 10 %). */
  constructor(reserve: number, now: () => number = Date.now) {
    this.#reserve = reserve;
    this.#now = now;
  }

  /**
   * Reads the headers of any upstream answer; the remaining count when the upstream sent one.
   * `sentAt` (`preciseNow()` when its request left) keeps an answer that arrives late, to a
   * request sent before the one already read, from replacing a newer reading with an older one.
   */
  observe(headers: Headers, sentAt: number = preciseNow()): number | undefined {
    const remaining = leadingInteger(headers.get('ratelimit-remaining'));
    if (remaining === undefined) return undefined;
    this.#read(remaining, leadingInteger(headers.get('ratelimit-limit')), sentAt, this.#now());
    return remaining;
  }

  /** The reading held, for the other workers. */
  reading(): UpstreamNews | undefined {
    if (this.#remaining === undefined) return undefined;
    return { kind: 'reading', remaining: this.#remaining, ...(this.#limit === undefined ? {} : { limit: this.#limit }), sentAt: this.#readingSentAt, readAt: this.#readAt };
  }

  /** The 429 block in force, for the other workers. */
  block(): UpstreamNews {
    return { kind: 'blocked', until: this.#blockedUntil };
  }

  /** What another worker read or was refused. */
  learn(news: UpstreamNews): void {
    if (news.kind === 'reading') this.#read(news.remaining, news.limit, news.sentAt, news.readAt);
    else if (news.kind === 'blocked') {
      this.#blockedUntil = Math.max(this.#blockedUntil, news.until);
      this.#remaining = 0;
      this.#readAt = this.#now();
    }
  }

  #read(remaining: number, limit: number | undefined, sentAt: number, readAt: number): void {
    if (sentAt < this.#readingSentAt) return;
    this.#readingSentAt = sentAt;
    this.#remaining = remaining;
    this.#limit = limit ?? this.#limit;
    this.#readAt = readAt;
  }

  /** A 429: nothing more is asked before its Retry-After (or `fallbackMs`). */
  refused(retryAfterSeconds: number | undefined, fallbackMs: number): void {
    const waitMs = retryAfterSeconds === undefined ? fallbackMs : Math.max(retryAfterSeconds * 1000, 0);
    this.#blockedUntil = Math.max(this.#blockedUntil, this.#now() + waitMs);
    this.#remaining = 0;
    this.#readAt = this.#now();
  }

  /** Still within a 429's Retry-After. */
  blocked(): boolean {
    return this.#now() < this.#blockedUntil;
  }

  /** Seconds left of a 429's Retry-After, for the client's own Retry-After. */
  retryAfterSeconds(): number | undefined {
    const left = this.#blockedUntil - this.#now();
    return left > 0 ? Math.ceil(left / 1000) : undefined;
  }

  /** The last reading says few requests are left (and is recent). */
  nearLimit(): boolean {
    if (this.#remaining === undefined || this.#now() - this.#readAt > readingLifetimeMs) return false;
    const floor = this.#limit === undefined ? 0 : Math.floor(this.#limit * this.#reserve);
    return this.#remaining <= floor;
  }
}

/** `76;w=21600` → 76. */
function leadingInteger(value: string | null): number | undefined {
  const match = value === null ? null : /^\s*(\d+)/.exec(value);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
