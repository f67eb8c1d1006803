import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, createRemoteJWKSet, decodeJwt, exportJWK, jwtVerify, SignJWT, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import type { AuthConfig } from '../config/auth.ts';
import * as z from '../config/zod.ts';
import { writeNewFile } from '../io/durable-file.ts';

/** One entry of a token's `access` claim (Distribution's JWT token format). */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

/** A token that checked out: who it speaks for and what it allows. */
export interface VerifiedToken {
  /** The `sub` claim; '' for a token issued to an anonymous client. */
  subject: string;
  access: AccessEntry[];
  /** True for Berth's own tokens, whose subject is a user of the htpasswd file. */
  own: boolean;
  issuer: string;
}

/** Why a token was refused; the message is safe to show the client. */
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}

/** Signatures accepted from anyone: asymmetric only, so a public key can never double as an HMAC secret. */
const asymmetricAlgorithms = ['ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA'];
const clockTolerance = 30;
const accessTokenType = 'JWT';
const refreshTokenType = 'berth-refresh+jwt';

/** Verified access tokens remembered, at most (the least recently verified go first). */
const verifiedCacheSize = 10_000;
/** How long a verification is trusted before the signature is checked again (bounds how long a withdrawn issuer key keeps working). */
const verifiedCacheTtl = 60_000;

const accessClaim = z.array(z.object({ type: z.string(), name: z.string(), actions: z.array(z.string()) })).check(z.maxLength(1000));

type TokenSettings = AuthConfig['token'];

interface Verifier {
  key: KeyObject | JWTVerifyGetKey;
  audience: string;
}

/**
 * Issues and verifies the registry's Bearer tokens: short-lived JWTs
 * carrying granted scopes (`access`), and long-lived refresh tokens (what
 * `docker login` keeps as an identity token). Tokens from configured
 * external issuers are verified against their keys.
 */
export class TokenService {
  readonly settings: TokenSettings;
  readonly #signingKey: KeyObject;
  readonly #algorithm: string;
  readonly #keyId: string;
  readonly #publicJwk: JWK;
  readonly #own: Verifier;
  readonly #trusted: Map<string, Verifier>;
  /** Token text → what it verified to, and until when that holds: clients send the same token with every request. */
  readonly #verified = new Map<string, { token: VerifiedToken; until: number }>();

  private constructor(settings: TokenSettings, signingKey: KeyObject, algorithm: string, publicJwk: JWK, keyId: string, trusted: Map<string, Verifier>) {
    this.settings = settings;
    this.#signingKey = signingKey;
    this.#algorithm = algorithm;
    this.#publicJwk = publicJwk;
    this.#keyId = keyId;
    this.#own = { key: createPublicKey(signingKey), audience: settings.service };
    this.#trusted = trusted;
  }

  /** Loads (or generates once at `defaultKeyPath`) the signing key and the trusted issuers' keys. */
  static async open(settings: TokenSettings, defaultKeyPath: string): Promise<TokenService> {
    const signingKey = await loadOrCreateSigningKey(settings.signingKey ?? defaultKeyPath, settings.signingKey === undefined);
    const algorithm = algorithmFor(signingKey);
    const publicJwk = await exportJWK(createPublicKey(signingKey));
    const keyId = await calculateJwkThumbprint(publicJwk);
    const trusted = new Map<string, Verifier>();
    for (const issuer of settings.trusted) {
      if (issuer.issuer === settings.issuer) throw new Error(`auth.token.trusted: issuer ${issuer.issuer} is Berth's own issuer name`);
      trusted.set(issuer.issuer, { key: await trustedKey(issuer), audience: issuer.audience ?? settings.service });
    }
    return new TokenService(settings, signingKey, algorithm, { ...publicJwk, kid: keyId, alg: algorithm, use: 'sig' }, keyId, trusted);
  }

  /**
   * A secret for another purpose (UI session cookies), derived from the
   * signing key: replicas sharing the key share it, and it changes with it.
   */
  derivedSecret(purpose: string): Buffer {
    return createHmac('sha256', this.#signingKey.export({ format: 'der', type: 'pkcs8' }))
      .update(purpose)
      .digest();
  }

  /** The public half of the signing key, for other services that verify Berth's tokens. */
  jwks(): JSONWebKeySet {
    return { keys: [this.#publicJwk] };
  }

  async issueAccessToken(subject: string, access: AccessEntry[]): Promise<{ token: string; expiresIn: number; issuedAt: Date }> {
    const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const expiresIn = Math.floor(this.settings.ttl / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.#algorithm, kid: this.#keyId, typ: accessTokenType })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(this.settings.service)
      .setIssuedAt(issuedAt)
      .setNotBefore(issuedAt)
      .setExpirationTime(new Date(issuedAt.getTime() + expiresIn * 1000))
      .setJti(randomUUID())
      .sign(this.#signingKey);
    return { token, expiresIn, issuedAt };
  }

  /**
   * A refresh token for `subject`, bound to `credential` (a fingerprint of
   * the user's password hash): changing the password or removing the user
   * revokes it.
   */
  async issueRefreshToken(subject: string, credential: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ credential })
      .setProtectedHeader({ alg: this.#algorithm, kid: this.#keyId, typ: refreshTokenType })
      .setIssuer(this.settings.issuer)
      .setSubject(subject)
      .setAudience(this.settings.service)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.floor(this.settings.refreshTtl / 1000))
      .setJti(randomUUID())
      .sign(this.#signingKey);
  }

  /**
   * Checks signature, issuer, audience and lifetime of a Bearer token;
   * InvalidTokenError otherwise. A token that checked out is remembered
   * until it expires (at most a minute): a signature check costs more than
   * the rest of a manifest request.
   */
  async verifyAccessToken(token: string): Promise<VerifiedToken> {
    const known = this.#verified.get(token);
    if (known !== undefined) {
      if (Date.now() < known.until) return known.token;
      this.#verified.delete(token);
    }
    const { verified, expiresAt } = await this.#verifyAccessToken(token);
    if (this.#verified.size >= verifiedCacheSize) this.#verified.delete(this.#verified.keys().next().value as string);
    this.#verified.set(token, { token: verified, until: Math.min(expiresAt + clockTolerance * 1000, Date.now() + verifiedCacheTtl) });
    return verified;
  }

  async #verifyAccessToken(token: string): Promise<{ verified: VerifiedToken; expiresAt: number }> {
    const issuer = unverifiedIssuer(token);
    const own = issuer === this.settings.issuer;
    const verifier = own ? this.#own : this.#trusted.get(issuer);
    if (verifier === undefined) throw new InvalidTokenError('token from an issuer this registry does not trust');
    const payload = await verify(token, verifier, {
      issuer,
      algorithms: own ? [this.#algorithm] : asymmetricAlgorithms,
      ...(own ? { typ: accessTokenType } : {}),
    });
    const access = accessClaim.safeParse(payload['access'] ?? []);
    if (!access.success) throw new InvalidTokenError('token has a malformed access claim');
    const verified = { subject: typeof payload.sub === 'string' ? payload.sub : '', access: access.data, own, issuer };
    return { verified, expiresAt: (payload.exp as number) * 1000 };
  }

  /** Checks a refresh token issued by this registry; resolves to its subject and credential fingerprint. */
  async verifyRefreshToken(token: string): Promise<{ subject: string; credential: string }> {
    if (unverifiedIssuer(token) !== this.settings.issuer) throw new InvalidTokenError('refresh token not issued by this registry');
    const payload = await verify(token, this.#own, { issuer: this.settings.issuer, algorithms: [this.#algorithm], typ: refreshTokenType });
    const credential = payload['credential'];
    if (typeof payload.sub !== 'string' || payload.sub === '' || typeof credential !== 'string') {
      throw new InvalidTokenError('malformed refresh token');
    }
    return { subject: payload.sub, credential };
  }
}

async function verify(token: string, verifier: Verifier, options: { issuer: string; algorithms: string[]; typ?: string }) {
  try {
    const { payload } = await jwtVerify(token, verifier.key as KeyObject, {
      ...options,
      audience: verifier.audience,
      clockTolerance,
      requiredClaims: ['exp'],
    });
    return payload;
  } catch (error) {
    const code = (error as { code?: string }).code;
    const reason =
      code === 'ERR_JWT_EXPIRED'
        ? 'token expired'
        : code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED'
          ? 'token signature invalid'
          : code === 'ERR_JOSE_ALG_NOT_ALLOWED'
            ? 'token signed with an algorithm that is not accepted'
            : code === 'ERR_JWT_CLAIM_VALIDATION_FAILED'
              ? `token ${(error as Error).message.replace(/^"(\w+)" claim/, '$1 claim')}`
              : 'token invalid';
    throw new InvalidTokenError(reason, { cause: error });
  }
}

function unverifiedIssuer(token: string): string {
  try {
    const issuer = decodeJwt(token).iss;
    if (typeof issuer === 'string') return issuer;
  } catch (cause) {
    throw new InvalidTokenError('not a JWT', { cause });
  }
  throw new InvalidTokenError('token names no issuer');
}

async function trustedKey(issuer: AuthConfig['token']['trusted'][number]): Promise<KeyObject | JWTVerifyGetKey> {
  if (issuer.publicKey !== undefined) {
    const pem = await readFile(issuer.publicKey, 'utf8');
    if (pem.includes('BEGIN CERTIFICATE')) return new X509Certificate(pem).publicKey;
    return createPublicKey(pem);
  }
  const jwks = issuer.jwks as string;
  if (/^https?:\/\//.test(jwks)) return createRemoteJWKSet(new URL(jwks), { timeoutDuration: 5000, cooldownDuration: 30_000 });
  return createLocalJWKSet(JSON.parse(await readFile(jwks, 'utf8')) as JSONWebKeySet);
}

function algorithmFor(key: KeyObject): string {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ec' && curve === 'prime256v1') return 'ES256';
  if (type === 'ec' && curve === 'secp384r1') return 'ES384';
  if (type === 'ec' && curve === 'secp521r1') return 'ES512';
  if (type === 'rsa') return 'RS256';
  if (type === 'ed25519') return 'EdDSA';
  throw new Error(`token signing key: unsupported key type ${type ?? 'unknown'}${curve === undefined ? '' : ` (${curve})`}; use EC P-256, RSA or Ed25519`);
}

/** Reads the PEM private key at `path`; when `create` and it is absent, generates an EC P-256 key there (mode 0600). */
async function loadOrCreateSigningKey(path: string, create: boolean): Promise<KeyObject> {
  try {
    return createPrivateKey(await readFile(path, 'utf8'));
  } catch (error) {
    if (!create || (error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`cannot read the token signing key ${path}: ${(error as Error).message}`, { cause: error });
    }
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' });
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  try {
    await writeNewFile(path, pem, 0o600);
  } catch (error) {
    // Another process created it first: use that one, so both sign alike.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  return createPrivateKey(await readFile(path, 'utf8'));
}
