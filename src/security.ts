import { access, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { AccessControl } from './auth/access-control.ts';
import { AccessRules } from './auth/access-rules.ts';
import { CredentialCache } from './auth/credential-cache.ts';
import { PasswordChecker } from './auth/password-checker.ts';
import { readHtpasswd, type Htpasswd } from './auth/htpasswd.ts';
import { TokenService } from './auth/tokens.ts';
import { WatchedFile } from './auth/watched-file.ts';
import { ConfigError } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { splitHostPort } from './config/units.ts';
import type { AppDependencies } from './http/app.ts';
import { RateLimiter } from './http/rate-limit.ts';
import type { ServerSettings } from './http/server-options.ts';
import { defaultHosts, ensureSelfSigned } from './tls/self-signed.ts';

/** What access control, TLS and the limits add to the HTTP app. */
export interface Security {
  app: Pick<AppDependencies, 'access' | 'tokens' | 'server'>;
  https: boolean;
  /** The development CA clients must trust, with `tls.selfSigned`. */
  caCert?: string;
  /** Stops what access control started (password workers). */
  close(): Promise<void>;
}

/** The users file used when `auth.htpasswd` is not set. */
export function defaultHtpasswdPath(config: Config): string {
  return resolve(config.auth.htpasswd ?? join(config.dataDir, 'htpasswd'));
}

/** Builds access control, TLS material and server limits from the configuration, logging what is in force. */
export async function openSecurity(config: Config, logger: Logger): Promise<Security> {
  const server: ServerSettings = serverSettings(config);
  let caCert: string | undefined;
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    server.https = { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) };
  } else if (config.tls.selfSigned) {
    const hosts = config.tls.hosts.length > 0 ? config.tls.hosts : withListenHost(defaultHosts(), config.listen);
    const files = await ensureSelfSigned(resolve(config.dataDir, 'tls'), hosts);
    server.https = { cert: await readFile(files.cert), key: await readFile(files.key) };
    caCert = files.caCert;
    logger.info({ hosts, caCert, created: files.created }, 'TLS: self-signed certificate from the development CA');
  }
  const control = await openAccessControl(config, logger);
  const app: Security['app'] = { server, ...(control === undefined ? {} : { access: control, tokens: control }) };
  return {
    app,
    https: server.https !== undefined,
    ...(caCert === undefined ? {} : { caCert }),
    close: async () => control?.close(),
  };
}

async function openAccessControl(config: Config, logger: Logger): Promise<AccessControl | undefined> {
  const { auth } = config;
  const htpasswdPath = defaultHtpasswdPath(config);
  const hasUsers = await exists(htpasswdPath);
  const enabled = auth.enabled === 'auto' ? hasUsers || auth.token.trusted.length > 0 : auth.enabled;
  if (!enabled) {
    logger.warn({}, `access control is off: anyone who reaches this registry may push and delete (add a user with "berth user add", see docs/auth.md)`);
    return undefined;
  }
  if (!hasUsers && auth.token.trusted.length === 0) {
    throw new ConfigError(`auth.enabled is true but the users file ${htpasswdPath} does not exist: create it with "berth user add NAME"`);
  }
  if (auth.anonymousPull && (auth.access !== undefined || auth.rulesFile !== undefined)) {
    throw new ConfigError('auth.anonymousPull applies only without access rules: give rules an `anonymous: [pull]` instead');
  }
  const report = (what: string) => (error: unknown) => logger.error({ err: error }, `${what} changed but cannot be used; the previous version stays in force`);
  const users = hasUsers ? await WatchedFile.open<Htpasswd>(htpasswdPath, readHtpasswd, { onError: report(htpasswdPath) }) : undefined;
  let rules: () => Promise<AccessRules>;
  if (auth.rulesFile !== undefined) {
    const file = await WatchedFile.open(resolve(auth.rulesFile), AccessRules.load, { onError: report(auth.rulesFile) });
    rules = () => file.current();
  } else {
    const fixed = auth.access === undefined ? AccessRules.everyUser(auth.anonymousPull) : new AccessRules(auth.access, 'auth.access');
    rules = async () => fixed;
  }
  const tokens = await TokenService.open(auth.token, resolve(config.dataDir, 'auth', 'token-signing-key.pem'));
  logger.info(
    {
      users: users?.path,
      rules: auth.rulesFile ?? (auth.access === undefined ? `every user may push; anonymous pull ${auth.anonymousPull ? 'on' : 'off'}` : 'auth.access'),
      challenge: auth.challenge,
      trustedIssuers: auth.token.trusted.map((issuer) => issuer.issuer),
    },
    'access control is on',
  );
  return new AccessControl({
    ...(users === undefined ? {} : { users: () => users.current() }),
    rules,
    tokens,
    cache: new CredentialCache(auth.credentialCache),
    passwords: new PasswordChecker(auth.passwordChecks),
    ...(auth.failedSignIns.limit === 0
      ? {}
      : { failures: new RateLimiter({ requests: auth.failedSignIns.limit, per: auth.failedSignIns.per, burst: auth.failedSignIns.limit, clients: 100_000 }) }),
    challenge: auth.challenge,
    realm: auth.realm,
  });
}

function serverSettings(config: Config): ServerSettings {
  const { limits } = config;
  const settings: ServerSettings = {
    maxHeaderBytes: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeout,
    idleTimeout: limits.idleTimeout,
    keepAliveTimeout: limits.keepAliveTimeout,
    requestTimeout: limits.requestTimeout,
    trustProxy: limits.trustProxy,
  };
  const { rateLimit } = limits;
  if (rateLimit.requests > 0) {
    settings.rateLimit = { requests: rateLimit.requests, per: rateLimit.per, burst: rateLimit.burst ?? rateLimit.requests, clients: rateLimit.clients };
  }
  return settings;
}

/** The listen address joins the certificate's names when it is a specific host. */
function withListenHost(hosts: string[], listen: string): string[] {
  const { host } = splitHostPort(listen);
  return host === '0.0.0.0' || host === '::' || hosts.includes(host) ? hosts : [...hosts, host];
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
