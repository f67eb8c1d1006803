import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import type { AccessPolicy, Caller, SessionAccess } from '../http/access.ts';

/** Who looks at a page or calls the JSON API, and what protects their writes. */
export interface Viewer {
  caller: Caller;
  /** Signed in (session or credentials); false for anonymous visitors. */
  signedIn: boolean;
  admin: boolean;
  /** Whether the registry checks access at all (otherwise everyone may do everything). */
  accessControl: boolean;
  /** The token a form or script must send back with a write made with cookies. */
  csrf: string;
  /** Whether the caller came with cookies (a browser): writes then need `csrf`. */
  byCookie: boolean;
}

export const sessionCookie = 'berth_session';
const csrfCookie = 'berth_csrf';

const everything: Caller = { may: () => true, sees: () => true, admin: true };

/**
 * Resolves the viewer of a UI or API request: credentials in the
 * Authorization header (scripts) are checked as for /v2/; otherwise the
 * session cookie (the browser); otherwise an anonymous caller. Writes made
 * with cookies carry a CSRF token (the session's, or a double-submit
 * cookie's when not signed in) and a same-origin Origin when one is sent.
 */
export class UiSessions {
  readonly #access: AccessPolicy | undefined;
  readonly #sessions: SessionAccess | undefined;
  readonly ttlMs: number;

  constructor(access: AccessPolicy | undefined, sessions: SessionAccess | undefined, ttlMs: number) {
    this.#access = access;
    this.#sessions = sessions;
    this.ttlMs = ttlMs;
  }

  get signInAvailable(): boolean {
    return this.#sessions !== undefined;
  }

  async viewer(request: FastifyRequest, reply: FastifyReply): Promise<Viewer> {
    const cookies = parseCookies(request.headers.cookie);
    const accessControl = this.#access !== undefined;
    if (request.headers.authorization !== undefined && this.#access !== undefined) {
      const caller = await this.#access.authorize(request, []);
      return { caller, signedIn: caller.user !== undefined, admin: caller.admin === true, accessControl, csrf: '', byCookie: false };
    }
    const session = cookies.get(sessionCookie);
    if (session !== undefined && this.#sessions !== undefined) {
      const resumed = await this.#sessions.resume(session);
      if (resumed !== undefined) {
        return { caller: resumed.caller, signedIn: true, admin: resumed.caller.admin === true, accessControl, csrf: resumed.csrf, byCookie: true };
      }
      this.clear(request, reply);
    }
    let csrf = cookies.get(csrfCookie);
    if (csrf === undefined || !/^[A-Za-z0-9_-]{24}$/.test(csrf)) {
      csrf = randomBytes(18).toString('base64url');
      reply.header('set-cookie', cookie(request, csrfCookie, csrf, { sameSite: 'Strict' }));
    }
    const caller = this.#sessions === undefined || this.#access === undefined ? everything : await this.#sessions.anonymous();
    return { caller, signedIn: false, admin: caller.admin === true, accessControl, csrf, byCookie: true };
  }

  /** Checks a password and sets the session cookie; 401/429 RegistryErrors otherwise. */
  async signIn(request: FastifyRequest, reply: FastifyReply, user: string, password: string): Promise<void> {
    if (this.#sessions === undefined) throw new RegistryError('UNSUPPORTED', 'access control is off: there is nobody to sign in as');
    const { session } = await this.#sessions.signIn(user, password, request.ip, this.ttlMs);
    reply.header('set-cookie', cookie(request, sessionCookie, session, { sameSite: 'Lax', maxAge: Math.floor(this.ttlMs / 1000) }));
  }

  clear(request: FastifyRequest, reply: FastifyReply): void {
    reply.header('set-cookie', cookie(request, sessionCookie, '', { sameSite: 'Lax', maxAge: 0 }));
  }

  /** Refuses a cookie-authenticated write without the viewer's CSRF token or from another origin (403 DENIED). */
  checkWrite(request: FastifyRequest, viewer: Viewer, token: string | undefined): void {
    if (!viewer.byCookie) return;
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let host: string | undefined;
      try {
        host = new URL(origin).host;
      } catch {
        host = undefined;
      }
      if (host !== request.host) throw new RegistryError('DENIED', 'cross-origin writes are refused');
    }
    const expected = Buffer.from(viewer.csrf);
    const given = Buffer.from(token ?? '');
    if (expected.length === 0 || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new RegistryError('DENIED', "the request lacks this page's CSRF token; reload the page and try again");
    }
  }
}

function cookie(request: FastifyRequest, name: string, value: string, options: { sameSite: 'Lax' | 'Strict'; maxAge?: number }): string {
  const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', `SameSite=${options.sameSite}`];
  if (options.maxAge !== undefined) parts.push(`Max-Age=${options.maxAge}`);
  if (request.protocol === 'https') parts.push('Secure');
  return parts.join('; ');
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const equals = part.indexOf('=');
    if (equals <= 0) continue;
    const name = part.slice(0, equals).trim();
    if (!cookies.has(name)) cookies.set(name, part.slice(equals + 1).trim());
  }
  return cookies;
}
