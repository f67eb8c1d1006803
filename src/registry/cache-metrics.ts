/**
 * Counts lookups of a cache that a kind of repository keeps (the proxy's
 * pull-through cache, the archive kind's index): Berth's metrics show the
 * hit ratio per kind and cache. Kinds are given one by the server wiring;
 * the default counts nothing.
 */
export interface CacheCounter {
  hit(): void;
  miss(): void;
}

export const uncounted: CacheCounter = { hit() {}, miss() {} };
