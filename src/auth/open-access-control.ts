import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.ts';
import { defaultHtpasswdPath, type Config } from '../config/schema.ts';
import { alone, type Peers } from '../io/peers.ts';
import { RateLimiter, type Spending } from '../io/rate-limiter.ts';
import { AccessControl } from './access-control.ts';
import { AccessRules } from './access-rules.ts';
import { CredentialCache } from './credential-cache.ts';
import { readHtpasswd, type Htpasswd } from './htpasswd.ts';
import { PasswordChecker } from './password-checker.ts';
import { TokenService } from './tokens.ts';
import { WatchedFile } from './watched-file.ts';

/** Access control from the configuration, or undefined when it is off (with a warning saying so). */
export async function openAccessControl(config: Config, logger: Logger, peers: Peers = alone()): Promise<AccessControl | undefined> {
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
  let rulesFile: WatchedFile<AccessRules> | undefined;
  if (auth.rulesFile !== undefined) {
    const file = await WatchedFile.open(resolve(auth.rulesFile), AccessRules.load, { onError: report(auth.rulesFile) });
    rulesFile = file;
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
      : {
          // Every worker counts every failed sign-in, wherever it happened.
          failures: new RateLimiter(
            { requests: auth.failedSignIns.limit, per: auth.failedSignIns.per, burst: auth.failedSignIns.limit, clients: 100_000 },
            peers.count > 1 ? peers.channel<Spending>('failed-sign-ins') : undefined,
          ),
        }),
    challenge: auth.challenge,
    realm: auth.realm,
    reloadFiles: async () => {
      await Promise.all([users?.reload(), rulesFile?.reload()]);
    },
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
