import { hash, randomBytes } from 'node:crypto';

interface Entry {
  /** The bcrypt hash the password was checked against: a changed password misses. */
  hash: string;
  expiresAt: number;
}

/**
 * Remembers, for a short while, that a user name and password matched a
 * bcrypt hash, so a client sending Basic credentials on every request does
 * not cost a bcrypt comparison each time. Keys are SHA-256 digests of a
 * secret that lives only in this process followed by the credentials: the
 * password is never kept, and the table is useless to anyone reading memory
 * dumps for guessing. (A one-shot hash, not an HMAC: `createHmac` costs
 * several times more per request, and the digests are never shown to anyone,
 * so length extension does not apply.) Bounded: the least recently used
 * entry goes first.
 */
export class CredentialCache {
  readonly #key = randomBytes(32).toString('base64');
  readonly #entries = new Map<string, Entry>();
  /** Comparisons running now, by credentials and hash: requests arriving meanwhile wait for the same answer. */
  readonly #running = new Map<string, Promise<boolean>>();
  readonly #ttl: number;
  readonly #size: number;

  constructor(options: { ttl: number; size: number }) {
    this.#ttl = options.ttl;
    this.#size = options.size;
  }

  /** True when this exact user and password were verified against `hash` within the TTL. */
  verified(user: string, password: string, hash: string): boolean {
    const key = this.#keyOf(user, password);
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#entries.delete(key);
    if (entry.expiresAt <= Date.now() || entry.hash !== hash) return false;
    this.#entries.set(key, entry);
    return true;
  }

  /**
   * Runs `compare` (a bcrypt comparison) for these credentials, or joins the
   * one already running for them. A client with many connections sends the
   * same credentials on all of them: when the entry expires they would all
   * miss at once, and each would queue a bcrypt comparison of its own.
   */
  compareOnce(user: string, password: string, hash: string | undefined, compare: () => Promise<boolean>): Promise<boolean> {
    const key = `${this.#keyOf(user, password)}\n${hash ?? ''}`;
    let running = this.#running.get(key);
    if (running === undefined) {
      running = compare().finally(() => this.#running.delete(key));
      this.#running.set(key, running);
    }
    return running;
  }

  remember(user: string, password: string, hash: string): void {
    if (this.#size === 0 || this.#ttl === 0) return;
    const key = this.#keyOf(user, password);
    this.#entries.delete(key);
    while (this.#entries.size >= this.#size) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    this.#entries.set(key, { hash, expiresAt: Date.now() + this.#ttl });
  }

  get size(): number {
    return this.#entries.size;
  }

  #keyOf(user: string, password: string): string {
    // The user's length first, so no other user and password can spell the same input.
    return hash('sha256', `${this.#key}\0${user.length}:${user}\0${password}`, 'base64');
  }
}
