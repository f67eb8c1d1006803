import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from './config/schema.ts';
import { splitHostPort } from './config/units.ts';
import type { AppDependencies } from './http/app.ts';
import type { SessionAccess } from './http/access.ts';
import type { ServerSettings } from './http/server-options.ts';
import { alone, type Peers } from './io/peers.ts';
import type { Spending } from './io/rate-limiter.ts';

/** What access control, TLS and the limits add to the HTTP app. */
export interface Security {
  app: Pick<AppDependencies, 'access' | 'tokens' | 'server'>;
  https: boolean;
  /** The development CA clients must trust, with `tls.selfSigned`. */
  caCert?: string;
  /** Web UI sign-in, when access control is on. */
  sessions?: SessionAccess;
  /** Reads the users and rules files again now if they changed (they are otherwise looked at once a second, on use). */
  reloadFiles(): Promise<void>;
  /** Stops what access control started (password workers). */
  close(): Promise<void>;
}

/** Builds access control, TLS material and server limits from the configuration, logging what is in force. */
export async function openSecurity(config: Config, logger: Logger, peers: Peers = alone()): Promise<Security> {
  const server: ServerSettings = serverSettings(config);
  if (peers.count > 1 && server.rateLimit !== undefined) server.rateLimitShare = peers.channel<Spending>('rate-limit');
  let caCert: string | undefined;
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    server.https = { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) };
  } else if (config.tls.selfSigned) {
    const { defaultHosts, ensureSelfSigned } = await import('./tls/self-signed.ts');
    const hosts = config.tls.hosts.length > 0 ? config.tls.hosts : withListenHost(defaultHosts(), config.listen);
    const files = await ensureSelfSigned(resolve(config.dataDir, 'tls'), hosts);
    server.https = { cert: await readFile(files.cert), key: await readFile(files.key) };
    caCert = files.caCert;
    logger.info({ hosts, caCert, created: files.created }, 'TLS: self-signed certificate from the development CA');
  }
  // Access control and certificate generation load only when configured: they
  // pull in JWT, bcrypt workers and X.509 code that start-up need not pay for.
  const control = await (await import('./auth/open-access-control.ts')).openAccessControl(config, logger, peers);
  const app: Security['app'] = { server, ...(control === undefined ? {} : { access: control, tokens: control }) };
  return {
    app,
    https: server.https !== undefined,
    ...(caCert === undefined ? {} : { caCert }),
    ...(control === undefined ? {} : { sessions: control }),
    reloadFiles: async () => control?.reloadFiles(),
    close: async () => control?.close(),
  };
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
