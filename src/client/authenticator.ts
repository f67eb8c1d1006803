import { httpRequest, type HttpRequestInit } from '../io/http-request.ts';
import { parseChallenges, type Challenge } from './challenge.ts';
import type { CredentialSource, Credentials } from './credentials.ts';
import { networkError, UpstreamError, isTemporaryStatus } from './errors.ts';
import { parseRetryAfter, withRetries, type RetryPolicy } from './retry.ts';
import { readLimited } from './response-body.ts';

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The spec: a token without expires_in lives 60 seconds, and never less. */
const minimumTokenSeconds = 60;
/** Tokens are renewed this long before they expire, so a request never carries a dying one. */
const renewalMarginMs = 10_000;
const maxTokenResponseBytes = 1024 * 1024;

/**
 * Answers a registry's authentication challenges for one host: Basic with
 * the credentials we have, or Bearer tokens from the challenge's realm
 * (Docker token spec), cached per scope set until shortly before expiry.
 * Once the scheme is known, requests carry credentials up front, so only
 * the first request to a host (or a new scope) costs a 401.
 */
export class Authenticator {
  readonly #host: string;
  readonly #credentials: CredentialSource;
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  #scheme: 'unknown' | 'basic' | 'bearer' = 'unknown';
  #bearer: { realm: string; service: string | undefined } | undefined;
  readonly #tokens = new Map<string, CachedToken>();
  readonly #pending = new Map<string, Promise<string>>();
  /** Scope sets a challenge widened (a push also needs pull): later requests ask for the wider set. */
  readonly #aliases = new Map<string, readonly string[]>();

  constructor(options: { host: string; credentials: CredentialSource; retry: RetryPolicy; userAgent: string }) {
    this.#host = options.host;
    this.#credentials = options.credentials;
    this.#retry = options.retry;
    this.#userAgent = options.userAgent;
  }

  /** The Authorization header for a request needing `scopes`, when the scheme is already known. */
  async header(scopes: readonly string[], repository: string | undefined, signal?: AbortSignal): Promise<string | undefined> {
    if (this.#scheme === 'basic') return basicHeader(await this.#credentials.lookup(this.#host, repository));
    if (this.#scheme === 'bearer' && this.#bearer !== undefined) {
      return `Bearer ${await this.#token(this.#bearer.realm, this.#bearer.service, scopes, repository, false, signal)}`;
    }
    return undefined;
  }

  /**
   * Learns from a 401's WWW-Authenticate. True when the request is worth
   * repeating with `header()`; false when we have nothing better to offer.
   */
  async challenged(wwwAuthenticate: string | null, scopes: readonly string[], repository: string | undefined, signal?: AbortSignal): Promise<boolean> {
    const challenges = parseChallenges(wwwAuthenticate ?? '');
    const bearer = challenges.find((challenge) => challenge.scheme === 'bearer');
    if (bearer !== undefined && bearer.params['realm'] !== undefined) {
      const wasBearer = this.#scheme === 'bearer';
      this.#scheme = 'bearer';
      this.#bearer = { realm: bearer.params['realm'], service: bearer.params['service'] };
      const wanted = mergeScopes(scopes, challengeScopes(bearer));
      // A token we had for these scopes was refused: fetch a fresh one, once.
      await this.#token(this.#bearer.realm, this.#bearer.service, wanted, repository, wasBearer, signal);
      if (scopeKey(wanted) !== scopeKey(scopes)) this.#aliases.set(scopeKey(scopes), wanted);
      return true;
    }
    if (challenges.some((challenge) => challenge.scheme === 'basic')) {
      if (this.#scheme === 'basic') return false;
      const credentials = await this.#credentials.lookup(this.#host, repository);
      if (credentials?.kind !== 'basic') return false;
      this.#scheme = 'basic';
      return true;
    }
    return false;
  }

  async #token(
    realm: string,
    service: string | undefined,
    requested: readonly string[],
    repository: string | undefined,
    refresh: boolean,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const scopes = this.#aliases.get(scopeKey(requested)) ?? requested;
    const key = `${realm}|${service ?? ''}|${scopeKey(scopes)}`;
    const cached = this.#tokens.get(key);
    if (!refresh && cached !== undefined && cached.expiresAt > Date.now()) return cached.token;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = this.#fetchToken(realm, service, scopes, repository, signal).then((token) => {
        this.#tokens.set(key, token);
        return token.token;
      });
      pending = pending.finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #fetchToken(realm: string, service: string | undefined, scopes: readonly string[], repository: string | undefined, signal: AbortSignal | undefined): Promise<CachedToken> {
    const credentials = await this.#credentials.lookup(this.#host, repository);
    return withRetries(this.#retry, () => this.#requestToken(realm, service, scopes, credentials, signal), { signal });
  }

  async #requestToken(
    realm: string,
    service: string | undefined,
    scopes: readonly string[],
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    const url = new URL(realm);
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, accept: 'application/json' };
    let init: HttpRequestInit;
    if (credentials?.kind === 'identity-token') {
      // OAuth2 refresh-token grant, as `docker login` identity tokens need.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credentials.token, client_id: 'berth' });
      if (service !== undefined) form.set('service', service);
      if (scopes.length > 0) form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: form.toString() };
    } else {
      if (service !== undefined) url.searchParams.set('service', service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      const basic = basicHeader(credentials);
      if (basic !== undefined) headers['authorization'] = basic;
      init = { method: 'GET', headers };
    }
    let response: Response;
    try {
      response = await httpRequest(url, { ...init, ...(signal === undefined ? {} : { signal }) });
    } catch (error) {
      throw networkError(realm, error);
    }
    const text = await readLimited(response, maxTokenResponseBytes);
    if (!response.ok) {
      const who = credentials === undefined ? 'anonymous access' : 'the credentials';
      throw new UpstreamError(
        response.status === 401 || response.status === 403
          ? `token service ${realm} refused ${who} for ${scopes.join(' ') || 'this registry'} (HTTP ${response.status})`
          : `token service ${realm} answered HTTP ${response.status}`,
        {
          status: response.status,
          code: response.status === 401 ? 'UNAUTHORIZED' : response.status === 403 ? 'DENIED' : undefined,
          temporary: isTemporaryStatus(response.status),
          retryAfter: parseRetryAfter(response.headers.get('retry-after')),
        },
      );
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch (cause) {
      throw new UpstreamError(`token service ${realm} answered with invalid JSON`, { temporary: false, cause });
    }
    const token = typeof body.token === 'string' && body.token !== '' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') {
      throw new UpstreamError(`token service ${realm} answered without a token`, { temporary: false });
    }
    const seconds = typeof body.expires_in === 'number' && body.expires_in > minimumTokenSeconds ? body.expires_in : minimumTokenSeconds;
    return { token, expiresAt: Date.now() + seconds * 1000 - renewalMarginMs };
  }
}

function basicHeader(credentials: Credentials | undefined): string | undefined {
  if (credentials?.kind !== 'basic') return undefined;
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

function challengeScopes(challenge: Challenge): string[] {
  return (challenge.params['scope'] ?? '').split(' ').filter((scope) => scope !== '');
}

/** Joins scope lists, merging the actions of the same resource (`repository:a:pull` + `repository:a:push`). */
export function mergeScopes(...lists: (readonly string[])[]): string[] {
  const byResource = new Map<string, Set<string>>();
  for (const scope of lists.flat()) {
    const index = scope.lastIndexOf(':');
    if (index === -1) continue;
    const resource = scope.slice(0, index);
    const actions = byResource.get(resource) ?? new Set<string>();
    for (const action of scope.slice(index + 1).split(',')) if (action !== '') actions.add(action);
    byResource.set(resource, actions);
  }
  return [...byResource].map(([resource, actions]) => `${resource}:${[...actions].sort().join(',')}`).sort();
}

function scopeKey(scopes: readonly string[]): string {
  return [...scopes].sort().join(' ');
}
