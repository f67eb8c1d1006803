import { byteSize, duration } from './units.ts';
import * as z from './zod.ts';

/** What a rule or a token can allow on a repository. */
export const repositoryActions = ['pull', 'push', 'delete'] as const;
const action = z.enum(repositoryActions);

const nonEmpty = z.string().check(z.minLength(1));
const count = z.number().check(z.int(), z.nonnegative());

/**
 * Access rules: who may do what on which repositories. The rule whose
 * pattern is longest among those matching a name decides alone.
 */
export const accessRulesConfig = z.strictObject({
  /** Users (or `@group`s) allowed every action on every repository, and the whole catalog. */
  admins: z._default(z.array(nonEmpty), []),
  /** Named groups of users, referred to as `@name` in `admins` and `grants`. */
  groups: z._default(z.record(z.string().check(z.regex(/^[A-Za-z0-9._-]+$/, 'group names use letters, digits, ".", "_" and "-"')), z.array(nonEmpty)), {}),
  rules: z._default(
    z.array(
      z.strictObject({
        /** A glob over repository names: `*` stays within one path component, `**` crosses them. */
        repositories: z.string().check(z.regex(/^[a-z0-9._*/-]+$/, 'expected a repository name glob such as "team/*" or "public/**"')),
        /** Actions allowed to everyone, signed in or not. */
        anonymous: z._default(z.array(action), []),
        /** User, `@group` or `*` (every signed-in user) → allowed actions. */
        grants: z._default(z.record(nonEmpty, z.array(action)), {}),
      }),
    ),
    [],
  ),
});

export type AccessRulesConfig = z.output<typeof accessRulesConfig>;

/** A token issuer other than Berth whose tokens are accepted, identified by its `iss` claim. */
const trustedIssuer = z
  .strictObject({
    issuer: nonEmpty,
    /** A JWKS document: an https URL, or a file path. */
    jwks: z.optional(nonEmpty),
    /** A PEM public key (SPKI) or certificate file. */
    publicKey: z.optional(nonEmpty),
    /** The `aud` its tokens must carry; default: `auth.token.service`. */
    audience: z.optional(nonEmpty),
  })
  .check(z.refine((value) => (value.jwks === undefined) !== (value.publicKey === undefined), 'give exactly one of jwks or publicKey'));

export const authConfig = z
  .strictObject({
    /** `auto`: on when the htpasswd file exists or a trusted issuer is configured. */
    enabled: z._default(z.union([z.literal('auto'), z.boolean()]), 'auto'),
    /** The users file (bcrypt htpasswd); default `<dataDir>/htpasswd`. */
    htpasswd: z.optional(nonEmpty),
    /** What a 401 asks for: `basic` (a password) or `token` (a Bearer token from the token endpoint). */
    challenge: z._default(z.enum(['basic', 'token']), 'basic'),
    /** The Basic realm shown to clients. */
    realm: z._default(nonEmpty, 'Berth'),
    /** With no `access.rules`: every signed-in user may do everything, and this decides whether anyone may pull. */
    anonymousPull: z._default(z.boolean(), false),
    /** A YAML file of access rules (`admins`, `groups`, `rules`), reloaded when it changes; instead of `access`. */
    rulesFile: z.optional(nonEmpty),
    access: z.optional(accessRulesConfig),
    /** Verified passwords are remembered this long (by a keyed hash, never the password) so bcrypt runs once per user and minute. */
    credentialCache: z.prefault(z.strictObject({ ttl: z.prefault(duration, '60s'), size: z._default(count, 10_000) }), {}),
    /** bcrypt runs in worker threads so it never stalls serving; at most `queue` checks wait, more get 429. */
    passwordChecks: z.prefault(z.strictObject({ workers: z._default(z.number().check(z.int(), z.positive()), 1), queue: z._default(count, 64) }), {}),
    /** Wrong passwords allowed per client address and `per` before 429 (guessing protection); 0: no limit. */
    failedSignIns: z.prefault(z.strictObject({ limit: z._default(count, 20), per: z.prefault(duration, '1m') }), {}),
    token: z.prefault(
      z.strictObject({
        /** The token endpoint URL clients are sent to; default: `<scheme>://<Host>/token` of the request. */
        realm: z.optional(z.string().check(z.url())),
        /** The `service` clients name and the `aud` of issued tokens. */
        service: z._default(nonEmpty, 'berth'),
        /** The `iss` of issued tokens. */
        issuer: z._default(nonEmpty, 'berth'),
        /** Lifetime of access tokens (at least 60s, as the token specification asks). */
        ttl: z.prefault(duration, '5m').check(z.refine((value) => value >= 60_000, 'tokens must live at least 60s')),
        /** Lifetime of refresh tokens (docker login's identity token); 0 turns them off. */
        refreshTtl: z.prefault(duration, '30d'),
        /** PEM private key (EC P-256) signing tokens; default: generated once under `<dataDir>/auth/`. Replicas must share it. */
        signingKey: z.optional(nonEmpty),
        trusted: z._default(z.array(trustedIssuer), []),
      }),
      {},
    ),
  })
  .check(
    z.superRefine((value, context) => {
      if (value.rulesFile !== undefined && value.access !== undefined) {
        context.addIssue({ code: 'custom', path: ['rulesFile'], message: 'give either rulesFile or access, not both' });
      }
    }),
  );

export type AuthConfig = z.output<typeof authConfig>;

export const tlsConfig = z
  .strictObject({
    /** PEM certificate (chain) and private key files; both or neither. */
    cert: z.optional(nonEmpty),
    key: z.optional(nonEmpty),
    /** Generate (once, under `<dataDir>/tls/`) a local CA and a certificate for `hosts`. For development. */
    selfSigned: z._default(z.boolean(), false),
    /** Host names and IP addresses the self-signed certificate is valid for; default: localhost, 127.0.0.1, ::1 and this machine's name. */
    hosts: z._default(z.array(nonEmpty), []),
  })
  .check(
    z.superRefine((value, context) => {
      if ((value.cert === undefined) !== (value.key === undefined)) {
        context.addIssue({ code: 'custom', path: ['cert'], message: 'give both cert and key' });
      }
      if (value.selfSigned && value.cert !== undefined) {
        context.addIssue({ code: 'custom', path: ['selfSigned'], message: 'give either selfSigned or cert and key, not both' });
      }
    }),
  );

export type TlsConfig = z.output<typeof tlsConfig>;

export const limitsConfig = z.prefault(
  z.strictObject({
    /** Largest request line plus headers; more is refused with 431. */
    maxHeaderBytes: z._default(byteSize, 16 * 1024),
    /** Largest blob accepted by an upload; unset: no limit. */
    maxBlobBytes: z.optional(byteSize),
    /** How long a client may take to send its request headers (slow clients are cut off with 408). */
    headersTimeout: z.prefault(duration, '20s'),
    /** A connection with no bytes moving either way for this long is closed. 0: never. */
    idleTimeout: z.prefault(duration, '2m'),
    /** How long an idle keep-alive connection stays open between requests; above the idle timeout of load balancers in front (often 60s). */
    keepAliveTimeout: z.prefault(duration, '72s'),
    /** How long a whole request may take; 0: no limit (large blob uploads can take long). */
    requestTimeout: z.prefault(duration, '0'),
    /** Trust X-Forwarded-For/-Proto from a reverse proxy: true, or the proxy addresses/CIDRs. */
    trustProxy: z._default(z.union([z.boolean(), z.array(nonEmpty)]), false),
    /** Per-client request rate limit (by address); off unless `requests` is set. */
    rateLimit: z.prefault(
      z.strictObject({
        /** Requests allowed per `per`; 0: no limit. */
        requests: z._default(count, 0),
        per: z.prefault(duration, '1s'),
        /** Extra requests a client may make in a burst; default: `requests`. */
        burst: z.optional(count),
        /** How many clients are tracked at most (the least recent are forgotten). */
        clients: z._default(z.number().check(z.int(), z.positive()), 100_000),
      }),
      {},
    ),
  }),
  {},
);

export type LimitsConfig = z.output<typeof limitsConfig>;
