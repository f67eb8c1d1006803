import { createHash } from 'node:crypto';
import { RegistryError } from '../errors/registry-error.ts';
import type { AccessPolicy, AccessRequest, Caller, Need, SessionAccess, TokenGrant, TokenGrantRequest, TokenIssuer } from '../http/access.ts';
import { isRepositoryName, type RepositoryName } from '../oci/names.ts';
import type { AccessRules, RepositoryAction } from './access-rules.ts';
import type { RateLimiter } from '../io/rate-limiter.ts';
import type { CredentialCache } from './credential-cache.ts';
import type { Htpasswd } from './htpasswd.ts';
import type { PasswordChecker } from './password-checker.ts';
import { formatScope, parseScopes } from './scopes.ts';
import { SessionSigner } from './sessions.ts';
import { InvalidTokenError, type AccessEntry, type TokenService, type VerifiedToken } from './tokens.ts';

/** Who presented which credentials, once they checked out. */
type Identity = { kind: 'anonymous' } | { kind: 'user'; user: string } | { kind: 'token'; token: VerifiedToken; user?: string };

export interface AccessControlOptions {
  /** The users; undefined when only external tokens authenticate. */
  users?: () => Promise<Htpasswd>;
  rules: () => Promise<AccessRules>;
  tokens: TokenService;
  cache: CredentialCache;
  passwords: PasswordChecker;
  /** Failed sign-ins allowed per client address; absent, no limit. */
  failures?: RateLimiter;
  /** What 401 answers ask for. */
  challenge: 'basic' | 'token';
  /** The Basic realm. */
  realm: string;
  /** Looks at the users and rules files now, whatever their check interval. */
  reloadFiles?: () => Promise<void>;
}

const catalogEntry: AccessEntry = { type: 'registry', name: 'catalog', actions: ['*'] };

/**
 * Berth's access control: Basic and Bearer credentials checked against the
 * htpasswd users and the token keys, requests checked against the access
 * rules, and the token endpoint's grants. 401 means "credentials missing
 * or not valid (or a token that lacks a scope the user could get)"; 403
 * means "these valid credentials may not do this".
 */
export class AccessControl implements AccessPolicy, TokenIssuer, SessionAccess {
  readonly #options: AccessControlOptions;
  readonly #sessions: SessionSigner;

  constructor(options: AccessControlOptions) {
    this.#options = options;
    this.#sessions = new SessionSigner(options.tokens.derivedSecret('berth web UI sessions'));
  }

  async signIn(user: string, password: string, client: string, ttlMs: number): Promise<{ session: string; csrf: string; caller: Caller }> {
    const checked = await this.#checkPassword(user, password, client, () => basicChallenge(this.#options.realm));
    const { value, claims } = this.#sessions.issue(checked, credentialFingerprint(await this.#hashOf(checked)), ttlMs);
    return { session: value, csrf: claims.csrf, caller: this.#callerFor({ kind: 'user', user: checked }, await this.#options.rules()) };
  }

  async resume(session: string): Promise<{ caller: Caller; csrf: string } | undefined> {
    const claims = this.#sessions.verify(session);
    if (claims === undefined) return undefined;
    const hash = await this.#hashOf(claims.user);
    if (hash === undefined || credentialFingerprint(hash) !== claims.credential) return undefined;
    return { caller: this.#callerFor({ kind: 'user', user: claims.user }, await this.#options.rules()), csrf: claims.csrf };
  }

  async anonymous(): Promise<Caller> {
    return this.#callerFor({ kind: 'anonymous' }, await this.#options.rules());
  }

  #callerFor(identity: Identity, rules: AccessRules): Caller {
    const user = callerName(identity);
    const may = (name: string, action: RepositoryAction): boolean => allows(identity, rules, name, action);
    // A token with `registry:catalog:*` lists what its user may pull; an
    // external issuer's token, what it grants.
    const sees = (name: string): boolean => (identity.kind === 'token' && identity.token.own ? rules.actions(identity.user, name).has('pull') : may(name, 'pull'));
    const admin = identity.kind === 'user' || (identity.kind === 'token' && identity.token.own) ? rules.isAdmin(identity.user) : false;
    // External tokens name what they grant one by one: no prefix bounds them.
    const prefixes = identity.kind === 'token' && !identity.token.own ? undefined : rules.pullPrefixes(identity.kind === 'anonymous' ? undefined : identity.user);
    return { ...(user === undefined ? {} : { user }), may, sees, admin, ...(prefixes === undefined ? {} : { visiblePrefixes: prefixes }) };
  }

  async authorize(request: AccessRequest, needs: readonly Need[]): Promise<Caller> {
    const identity = await this.#identify(request, needs);
    const rules = await this.#options.rules();
    const may = (name: string, action: RepositoryAction): boolean => allows(identity, rules, name, action);
    const denied = needs.filter((need) => {
      if (need.kind === 'repository') return !may(need.name, need.action);
      if (need.kind === 'catalog') return identity.kind === 'token' && !hasScope(identity.token, 'registry', 'catalog', '*');
      return isAnonymous(identity);
    });
    if (denied.length > 0) throw this.#refusal(request, identity, rules, denied);
    return this.#callerFor(identity, rules);
  }

  async grant(request: TokenGrantRequest): Promise<TokenGrant> {
    const { tokens } = this.#options;
    if (request.service !== undefined && request.service !== tokens.settings.service) {
      throw new RegistryError('UNSUPPORTED', `this token endpoint serves "${tokens.settings.service}", not "${request.service.slice(0, 100)}"`, {
        status: 400,
      });
    }
    const { credentials } = request;
    let user: string | undefined;
    let refreshToken: string | undefined;
    if (credentials.kind === 'password') {
      user = await this.#checkPassword(credentials.user, credentials.password, request.client, () => basicChallenge(this.#options.realm));
    } else if (credentials.kind === 'refresh') {
      user = await this.#checkRefreshToken(credentials.token);
      refreshToken = credentials.token;
    }
    const rules = await this.#options.rules();
    const access: AccessEntry[] = [];
    for (const wanted of parseScopes(request.scopes)) {
      if (wanted.type === 'registry' && wanted.name === 'catalog') {
        access.push(catalogEntry);
      } else if (wanted.type === 'repository' && isRepositoryName(wanted.name)) {
        const allowed = rules.actions(user, wanted.name);
        const actions = wanted.actions.includes('*') ? [...allowed] : wanted.actions.filter((action) => allowed.has(action as RepositoryAction));
        if (actions.length > 0) access.push({ type: 'repository', name: wanted.name, actions });
      }
    }
    const issued = await tokens.issueAccessToken(user ?? '', access);
    if (refreshToken === undefined && request.offline && user !== undefined && tokens.settings.refreshTtl > 0) {
      refreshToken = await tokens.issueRefreshToken(user, credentialFingerprint(await this.#hashOf(user)));
    }
    return { ...issued, scope: access.map(formatScope).join(' '), ...(refreshToken === undefined ? {} : { refreshToken }) };
  }

  jwks(): unknown {
    return this.#options.tokens.jwks();
  }

  /** Who the credentials say; 401 with a challenge for what `needs` asks when they do not check out. */
  async #identify(request: AccessRequest, needs: readonly Need[]): Promise<Identity> {
    const header = request.headers.authorization;
    if (header === undefined || header === '') return anonymous;
    const scopes = () => scopesOf(needs);
    const [scheme = '', value = ''] = header.trim().split(/\s+/, 2);
    if (/^basic$/i.test(scheme)) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      // containers/image sends an empty user and password when it has none.
      if (decoded === ':') return anonymous;
      const colon = decoded.indexOf(':');
      // Built only when refusing: most requests carry valid credentials.
      const challenge = () => this.#challenge(request, scopes());
      if (colon <= 0) throw unauthorized('malformed Basic credentials', challenge());
      return { kind: 'user', user: await this.#checkPassword(decoded.slice(0, colon), decoded.slice(colon + 1), request.ip, challenge) };
    }
    if (/^bearer$/i.test(scheme)) {
      try {
        const token = await this.#options.tokens.verifyAccessToken(value);
        if (!token.own || token.subject === '') return { kind: 'token', token };
        if ((await this.#hashOf(token.subject)) === undefined) throw new InvalidTokenError(`user ${token.subject} no longer exists`);
        return { kind: 'token', token, user: token.subject };
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        throw unauthorized(error.message, this.#challenge(request, scopes(), 'invalid_token'));
      }
    }
    throw unauthorized(`unsupported authorization scheme "${scheme.slice(0, 20)}": use Basic or Bearer`, this.#challenge(request, scopes()));
  }

  /**
   * The user name when the password is right; 401 with `challenge`
   * otherwise, and 429 once `client` has failed too often.
   */
  async #checkPassword(user: string, password: string, client: string, challenge: () => string): Promise<string> {
    const hash = await this.#hashOf(user);
    const { cache, passwords, failures } = this.#options;
    if (hash !== undefined && cache.verified(user, password, hash)) return user;
    const wait = failures?.blocked(client);
    if (wait !== undefined) {
      throw new RegistryError('TOOMANYREQUESTS', `too many failed sign-ins from ${client}; retry in ${wait}s`, {
        headers: { 'retry-after': String(wait) },
        detail: { retryAfter: wait },
      });
    }
    if (!(await cache.compareOnce(user, password, hash, () => passwords.matches(password, hash)))) {
      failures?.take(client);
      throw unauthorized('invalid username or password', challenge());
    }
    cache.remember(user, password, hash as string);
    return user;
  }

  /** Stops the password workers. */
  /** Reads the users and rules files again now if they changed, instead of on the next use after their check interval. */
  async reloadFiles(): Promise<void> {
    await this.#options.reloadFiles?.();
  }

  close(): Promise<void> {
    return this.#options.passwords.close();
  }

  async #checkRefreshToken(token: string): Promise<string> {
    try {
      const { subject, credential } = await this.#options.tokens.verifyRefreshToken(token);
      const hash = await this.#hashOf(subject);
      if (hash === undefined || credentialFingerprint(hash) !== credential) {
        throw new InvalidTokenError('refresh token revoked: the user was removed or changed password');
      }
      return subject;
    } catch (error) {
      if (!(error instanceof InvalidTokenError)) throw error;
      throw unauthorized(error.message, basicChallenge(this.#options.realm));
    }
  }

  async #hashOf(user: string): Promise<string | undefined> {
    return (await this.#options.users?.())?.get(user);
  }

  #refusal(request: AccessRequest, identity: Identity, rules: AccessRules, denied: readonly Need[]): RegistryError {
    const what = describe(denied[0] as Need);
    const scopes = scopesOf(denied);
    if (isAnonymous(identity)) {
      // Docker Engine, told Basic by GET /v2/ and holding no password, stops
      // ("no basic auth credentials") instead of asking anonymously; told
      // Bearer, it fetches an anonymous token and pulls. docker login still
      // checks the password there: at the token endpoint.
      const ping = denied.every((need) => need.kind === 'signed-in');
      const challenge = ping && rules.anonymousPull ? this.#bearerChallenge(request, scopes) : this.#challenge(request, scopes);
      return unauthorized(`authentication required to ${what}`, challenge);
    }
    if (identity.kind === 'token') {
      // A token lacking a scope the user could have gets a fresh challenge, so
      // the client fetches a token for it; one the user cannot have is denied.
      const { user } = identity;
      const obtainable = !identity.token.own || denied.every((need) => need.kind !== 'repository' || rules.actions(user, need.name).has(need.action));
      if (obtainable) return unauthorized(`the token does not allow you to ${what}`, this.#challenge(request, scopes, 'insufficient_scope'));
    }
    return new RegistryError('DENIED', `user ${callerName(identity) ?? ''} may not ${what}`);
  }

  #challenge(request: AccessRequest, scopes: readonly AccessEntry[], error?: string): string {
    if (this.#options.challenge === 'basic') return basicChallenge(this.#options.realm);
    return this.#bearerChallenge(request, scopes, error);
  }

  #bearerChallenge(request: AccessRequest, scopes: readonly AccessEntry[], error?: string): string {
    const { settings } = this.#options.tokens;
    const realm = settings.realm ?? `${request.protocol}://${request.host}/token`;
    const parts = [`realm=${quote(realm)}`, `service=${quote(settings.service)}`];
    if (scopes.length > 0) parts.push(`scope=${quote(scopes.map(formatScope).join(' '))}`);
    if (error !== undefined) parts.push(`error=${quote(error)}`);
    return `Bearer ${parts.join(',')}`;
  }
}

/** No credentials, or an anonymous token of Berth's own: asked to sign in where signing in is what is checked. */
function isAnonymous(identity: Identity): boolean {
  return identity.kind === 'anonymous' || (identity.kind === 'token' && identity.user === undefined && identity.token.own);
}

/** The name a caller goes by (upload ownership, logs); external tokens' subjects are qualified by their issuer. */
function callerName(identity: Identity): string | undefined {
  if (identity.kind === 'user') return identity.user;
  if (identity.kind === 'token') {
    if (identity.user !== undefined) return identity.user;
    if (!identity.token.own && identity.token.subject !== '') return `${identity.token.subject}@${identity.token.issuer}`;
  }
  return undefined;
}

function allows(identity: Identity, rules: AccessRules, name: string, action: RepositoryAction): boolean {
  if (identity.kind === 'anonymous') return rules.actions(undefined, name).has(action);
  if (identity.kind === 'user') return rules.actions(identity.user, name).has(action);
  if (!hasScope(identity.token, 'repository', name, action)) return false;
  // Berth's own tokens are also held to the rules as they are now, so a
  // changed rule applies before the token expires.
  return !identity.token.own || rules.actions(identity.user, name).has(action);
}

function hasScope(token: VerifiedToken, type: string, name: string, action: string): boolean {
  return token.access.some((entry) => entry.type === type && entry.name === name && (entry.actions.includes(action) || entry.actions.includes('*')));
}

const anonymous: Identity = { kind: 'anonymous' };

function scopesOf(needs: readonly Need[]): AccessEntry[] {
  return needs.map(scopeOf).filter((scope) => scope !== undefined);
}

/** The scope a client should ask a token for: writes ask for pull too, since pushes read back what they wrote. */
function scopeOf(need: Need): AccessEntry | undefined {
  if (need.kind === 'repository') {
    return { type: 'repository', name: need.name, actions: need.action === 'push' ? ['pull', 'push'] : [need.action] };
  }
  return need.kind === 'catalog' ? catalogEntry : undefined;
}

function describe(need: Need): string {
  if (need.kind === 'repository') return `${need.action} ${need.name satisfies RepositoryName}`;
  return need.kind === 'catalog' ? 'list the catalog' : 'use this registry';
}

function unauthorized(message: string, challenge: string): RegistryError {
  return new RegistryError('UNAUTHORIZED', message, { headers: { 'www-authenticate': challenge } });
}

function basicChallenge(realm: string): string {
  return `Basic realm=${quote(realm)}, charset="UTF-8"`;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** A short digest of a user's password hash, carried by refresh tokens so a new password revokes them. */
function credentialFingerprint(hash: string | undefined): string {
  return createHash('sha256')
    .update(hash ?? '')
    .digest('base64url')
    .slice(0, 22);
}
