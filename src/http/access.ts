import type { FastifyRequest } from 'fastify';
import type { RepositoryName } from '../oci/names.ts';
import type { Action } from './v2-routes.ts';

/**
 * What a request needs from its caller: an action on a repository, the
 * catalog (filtered to what the caller may pull), or only valid
 * credentials (GET /v2/, which `docker login` uses to check a password).
 */
export type Need = { kind: 'repository'; name: RepositoryName; action: Action } | { kind: 'catalog' } | { kind: 'signed-in' };

/** Who is asking, once their credentials checked out. */
export interface Caller {
  /** The signed-in user; undefined for anonymous callers. */
  readonly user?: string;
  /** Whether the caller may do `action` on `name` now (mount sources). */
  may(name: RepositoryName, action: Action): boolean;
  /** Whether the catalog shows `name` to this caller: a repository it may pull, whatever its token names. */
  sees(name: RepositoryName): boolean;
  /** Whether the caller is an administrator (every action everywhere; the web UI's operations page). */
  readonly admin?: boolean;
  /** Name prefixes outside which the caller sees nothing, when known: listings need not read past them. */
  readonly visiblePrefixes?: readonly string[];
}

/** Sign-in for the web UI: a session value the browser keeps in a cookie instead of sending a password each time. */
export interface SessionAccess {
  /**
   * Checks a password as Basic credentials are checked (same cache, workers
   * and failed sign-in limit); a new session lasting `ttlMs`, or
   * 401 UNAUTHORIZED / 429 TOOMANYREQUESTS.
   */
  signIn(user: string, password: string, client: string, ttlMs: number): Promise<{ session: string; csrf: string; caller: Caller }>;
  /** The caller a session stands for, under the rules as they are now; undefined when invalid, expired, or its user was removed or changed password. */
  resume(session: string): Promise<{ caller: Caller; csrf: string } | undefined>;
  /** The caller without credentials. */
  anonymous(): Promise<Caller>;
}

/** What authorization reads of a request: its headers, the client's address and, for a challenge, how the registry was addressed. */
export type AccessRequest = Pick<FastifyRequest, 'headers' | 'ip' | 'protocol' | 'host'>;

/**
 * The one authorization step before every /v2 handler. Decisions depend
 * only on credentials, names and rules, never on what is stored, so an
 * answer cannot tell whether a repository or blob the caller may not see
 * exists.
 */
export interface AccessPolicy {
  /** Resolves to the caller when `needs` are allowed; 401 UNAUTHORIZED (with a challenge) or 403 DENIED otherwise. */
  authorize(request: AccessRequest, needs: readonly Need[]): Promise<Caller>;
}

/** Credentials presented to the token endpoint. */
export type TokenCredentials = { kind: 'anonymous' } | { kind: 'password'; user: string; password: string } | { kind: 'refresh'; token: string };

export interface TokenGrantRequest {
  credentials: TokenCredentials;
  /** The client's address, for limits on failed sign-ins. */
  client: string;
  /** Scope strings as sent; each may hold several scopes separated by spaces. */
  scopes: readonly string[];
  /** The `service` the client names; must be this registry's. */
  service?: string;
  /** Whether a refresh token is wanted (`offline_token=true`, `access_type=offline`). */
  offline: boolean;
}

export interface TokenGrant {
  token: string;
  expiresIn: number;
  issuedAt: Date;
  /** The granted scopes, space-separated (OAuth2 responses carry them). */
  scope: string;
  refreshToken?: string;
}

/** The logic behind the token endpoint: authenticate, intersect requested with allowed scopes, sign. */
export interface TokenIssuer {
  /** 401 UNAUTHORIZED for wrong credentials; a token with only what is allowed otherwise (never an error for lacking access). */
  grant(request: TokenGrantRequest): Promise<TokenGrant>;
  /** The public keys tokens are signed with. */
  jwks(): unknown;
}
