import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** What a web UI session cookie carries: who, the password it was opened with (a fingerprint), its CSRF token and expiry. */
export interface SessionClaims {
  user: string;
  /** Fingerprint of the user's password hash when signing in: a new password ends the session. */
  credential: string;
  csrf: string;
  /** Milliseconds since the epoch. */
  expires: number;
}

/**
 * Signed session values: `base64url(JSON).base64url(HMAC-SHA256)`. Nothing
 * is stored server-side, so replicas sharing the signing key share
 * sessions; a session ends when it expires, its user is removed, or the
 * password changes.
 */
export class SessionSigner {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    this.#key = key;
  }

  issue(user: string, credential: string, ttlMs: number, now = Date.now()): { value: string; claims: SessionClaims } {
    const claims: SessionClaims = { user, credential, csrf: randomBytes(18).toString('base64url'), expires: now + ttlMs };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return { value: `${payload}.${this.#mac(payload)}`, claims };
  }

  /** The claims of a value this signer issued and that has not expired; undefined otherwise. */
  verify(value: string, now = Date.now()): SessionClaims | undefined {
    const [payload = '', mac = '', extra] = value.split('.');
    if (extra !== undefined || payload === '' || value.length > 4096) return undefined;
    const expected = Buffer.from(this.#mac(payload));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    let claims: unknown;
    try {
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (!isClaims(claims) || claims.expires <= now) return undefined;
    return claims;
  }

  #mac(payload: string): string {
    return createHmac('sha256', this.#key).update(payload).digest('base64url');
  }
}

function isClaims(value: unknown): value is SessionClaims {
  if (typeof value !== 'object' || value === null) return false;
  const claims = value as Record<string, unknown>;
  return typeof claims['user'] === 'string' && typeof claims['credential'] === 'string' && typeof claims['csrf'] === 'string' && typeof claims['expires'] === 'number';
}
