import { z } from 'zod';
import { byteSize, duration } from './units.ts';

/** What a rule or a token can allow on a repository. */
export const repositoryActions = ['pull', 'push', 'delete'] as const;
const action = z.enum(repositoryActions);

/**
 * Access rules: who may do what on which repositories. The rule whose
 * pattern is longest among those matching a name decides alone.
 */
export const accessRulesConfig = z.strictObject({
  /** Users (or `@group`s) allowed every action on every repository, and the whole catalog. */
  admins: z.array(z.string().min(1)).default([]),
  /** Named groups of users, referred to as `@name` in `admins` and `grants`. */
  groups: z.record(z.string().regex(/^[A-Za-z0-9._-]+$/, 'group names use letters, digits, ".", "_" and "-"'), z.array(z.string().min(1))).default({}),
  rules: z
    .array(
      z.strictObject({
        /** A glob over repository names: `*` stays within one path component, `**` crosses them. */
        repositories: z.string().regex(/^[a-z0-9._*/-]+$/, 'expected a repository name glob such as "team/*" or "public/**"'),
        /** Actions allowed to everyone, signed in or not. */
        anonymous: z.array(action).default([]),
        /** User, `@group` or `*` (every signed-in user) → allowed actions. */
        grants: z.record(z.string().min(1), z.array(action)).default({}),
      }),
    )
    .default([]),
});

export type AccessRulesConfig = z.output<typeof accessRulesConfig>;

/** A token issuer other than Berth whose tokens are accepted, identified by its `iss` claim. */
const trustedIssuer = z
  .strictObject({
    issuer: z.string().min(1),
    /** A JWKS document: an https URL, or a file path. */
    jwks: z.string().min(1).optional(),
    /** A PEM public key (SPKI) or certificate file. */
    publicKey: z.string().min(1).optional(),
    /** The `aud` its tokens must carry; default: `auth.token.service`. */
    audience: z.string().min(1).optional(),
  })
  .refine((value) => (value.jwks === undefined) !== (value.publicKey === undefined), 'give exactly one of jwks or publicKey');

export const authConfig = z
  .strictObject({
    /** `auto`: on when the htpasswd file exists or a trusted issuer is configured. */
    enabled: z.union([z.literal('auto'), z.boolean()]).default('auto'),
    /** The users file (bcrypt htpasswd); default `<dataDir>/htpasswd`. */
    htpasswd: z.string().min(1).optional(),
    /** What a 401 asks for: `basic` (a password) or `token` (a Bearer token from the token endpoint). */
    challenge: z.enum(['basic', 'token']).default('basic'),
    /** The Basic realm shown to clients. */
    realm: z.string().min(1).default('Berth'),
    /** With no `access.rules`: every signed-in user may do everything, and this decides whether anyone may pull. */
    anonymousPull: z.boolean().default(false),
    /** A YAML file of access rules (`admins`, `groups`, `rules`), reloaded when it changes; instead of `access`. */
    rulesFile: z.string().min(1).optional(),
    access: accessRulesConfig.optional(),
    /** Verified passwords are remembered this long (by a keyed hash, never the password) so bcrypt runs once per user and minute. */
    credentialCache: z.strictObject({ ttl: duration.prefault('60s'), size: z.number().int().nonnegative().default(10_000) }).prefault({}),
    /** bcrypt runs in worker threads so it never stalls serving; at most `queue` checks wait, more get 429. */
    passwordChecks: z.strictObject({ workers: z.number().int().positive().default(1), queue: z.number().int().nonnegative().default(64) }).prefault({}),
    /** Wrong passwords allowed per client address and `per` before 429 (guessing protection); 0: no limit. */
    failedSignIns: z.strictObject({ limit: z.number().int().nonnegative().default(20), per: duration.prefault('1m') }).prefault({}),
    token: z
      .strictObject({
        /** The token endpoint URL clients are sent to; default: `<scheme>://<Host>/token` of the request. */
        realm: z.string().url().optional(),
        /** The `service` clients name and the `aud` of issued tokens. */
        service: z.string().min(1).default('berth'),
        /** The `iss` of issued tokens. */
        issuer: z.string().min(1).default('berth'),
        /** Lifetime of access tokens (at least 60s, as the token specification asks). */
        ttl: duration.prefault('5m').refine((value) => value >= 60_000, 'tokens must live at least 60s'),
        /** Lifetime of refresh tokens (docker login's identity token); 0 turns them off. */
        refreshTtl: duration.prefault('30d'),
        /** PEM private key (EC P-256) signing tokens; default: generated once under `<dataDir>/auth/`. Replicas must share it. */
        signingKey: z.string().min(1).optional(),
        trusted: z.array(trustedIssuer).default([]),
      })
      .prefault({}),
  })
  .superRefine((value, context) => {
    if (value.rulesFile !== undefined && value.access !== undefined) {
      context.addIssue({ code: 'custom', path: ['rulesFile'], message: 'give either rulesFile or access, not both' });
    }
  });

export type AuthConfig = z.output<typeof authConfig>;

export const tlsConfig = z
  .strictObject({
    /** PEM certificate (chain) and private key files; both or neither. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Generate (once, under `<dataDir>/tls/`) a local CA and a certificate for `hosts`. For development. */
    selfSigned: z.boolean().default(false),
    /** Host names and IP addresses the self-signed certificate is valid for; default: localhost, 127.0.0.1, ::1 and this machine's name. */
    hosts: z.array(z.string().min(1)).default([]),
  })
  .superRefine((value, context) => {
    if ((value.cert === undefined) !== (value.key === undefined)) {
      context.addIssue({ code: 'custom', path: ['cert'], message: 'give both cert and key' });
    }
    if (value.selfSigned && value.cert !== undefined) {
      context.addIssue({ code: 'custom', path: ['selfSigned'], message: 'give either selfSigned or cert and key, not both' });
    }
  });

export type TlsConfig = z.output<typeof tlsConfig>;

export const limitsConfig = z
  .strictObject({
    /** Largest request line plus headers; more is refused with 431. */
    maxHeaderBytes: byteSize.default(16 * 1024),
    /** Largest blob accepted by an upload; unset: no limit. */
    maxBlobBytes: byteSize.optional(),
    /** How long a client may take to send its request headers (slow clients are cut off with 408). */
    headersTimeout: duration.prefault('20s'),
    /** A connection with no bytes moving either way for this long is closed. 0: never. */
    idleTimeout: duration.prefault('2m'),
    /** How long an idle keep-alive connection stays open between requests; above the idle timeout of load balancers in front (often 60s). */
    keepAliveTimeout: duration.prefault('72s'),
    /** How long a whole request may take; 0: no limit (large blob uploads can take long). */
    requestTimeout: duration.prefault('0'),
    /** Trust X-Forwarded-For/-Proto from a reverse proxy: true, or the proxy addresses/CIDRs. */
    trustProxy: z.union([z.boolean(), z.array(z.string().min(1))]).default(false),
    /** Per-client request rate limit (by address); off unless `requests` is set. */
    rateLimit: z
      .strictObject({
        /** Requests allowed per `per`; 0: no limit. */
        requests: z.number().int().nonnegative().default(0),
        per: duration.prefault('1s'),
        /** Extra requests a client may make in a burst; default: `requests`. */
        burst: z.number().int().nonnegative().optional(),
        /** How many clients are tracked at most (the least recent are forgotten). */
        clients: z.number().int().positive().default(100_000),
      })
      .prefault({}),
  })
  .prefault({});

export type LimitsConfig = z.output<typeof limitsConfig>;
