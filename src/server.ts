import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import PinoPretty from 'pino-pretty';
import type { BlobStore } from './blobs/blob-store.ts';
import { FsBlobStore } from './blobs/fs/fs-blob-store.ts';
import type { Config } from './config/schema.ts';
import { splitHostPort } from './config/units.ts';
import { createApp } from './http/app.ts';
import type { MetaStore } from './meta/meta-store.ts';
import { SqliteMetaStore } from './meta/sqlite/sqlite-meta-store.ts';
import { createHostedContext, HostedSource, type HostedContext } from './registry/hosted.ts';
import type { RepositorySource } from './registry/repository.ts';
import { RepositoryRouter } from './registry/router.ts';
import { namespaceResolver } from './sources/proxy/namespaces.ts';
import { proxyNamespaces, ProxySource } from './sources/proxy/proxy-source.ts';

/** The stores and the router built from a configuration: everything a command needs. */
export interface Registry {
  config: Config;
  blobs: BlobStore;
  meta: MetaStore;
  hosted: HostedContext;
  router: RepositoryRouter;
  logger: PinoLogger;
  close(): Promise<void>;
}

/** The one place that picks concrete drivers. */
export async function openRegistry(config: Config, logger: PinoLogger = createLogger(config)): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  const blobs: BlobStore = await FsBlobStore.open(resolve(config.storage.fs.path ?? dataDir));
  const meta: MetaStore = SqliteMetaStore.open(resolve(config.metadata.sqlite.path ?? join(dataDir, 'berth.db')));
  const hosted = createHostedContext(blobs, meta, {
    deletes: config.registry.deletes,
    redirects: config.storage.redirects ?? blobs.redirectUrl !== undefined,
  });
  const hostedSource = new HostedSource(hosted);
  const sourceContext = { hosted, logger, spoolDir: join(dataDir, 'proxy-spool') };
  const routes = await Promise.all(config.repositories.map(async (entry) => ({ prefix: entry.prefix, source: await sourceFor(entry, hostedSource, sourceContext) })));
  // Configured routes first: a configured "" prefix (a Docker Hub mirror) wins over the default.
  const router = new RepositoryRouter([...routes, { prefix: '', source: hostedSource }]);
  return {
    config,
    blobs,
    meta,
    hosted,
    router,
    logger,
    async close() {
      await router.close();
      await meta.close();
      await blobs.close?.();
    },
  };
}

async function sourceFor(
  entry: Config['repositories'][number],
  hostedSource: HostedSource,
  context: { hosted: HostedContext; logger: PinoLogger; spoolDir: string },
): Promise<RepositorySource> {
  switch (entry.kind) {
    case 'hosted':
      return hostedSource;
    case 'proxy':
      return ProxySource.create(entry, context);
  }
}

export interface RunningServer {
  app: FastifyInstance;
  registry: Registry;
  /** The address actually bound, as HOST:PORT. */
  address: string;
  /** Stops accepting, finishes in-flight requests, closes the stores. */
  close(): Promise<void>;
}

/** Opens the stores, builds the app and listens where the configuration says. */
export async function startServer(config: Config, logger: PinoLogger = createLogger(config)): Promise<RunningServer> {
  const registry = await openRegistry(config, logger);
  const app = createApp({
    router: registry.router,
    settings: {
      maxManifestBytes: config.registry.maxManifestBytes,
      chunkMinLength: config.registry.chunkMinLength ?? registry.blobs.chunkMinLength,
    },
    logger,
    resolveNamespace: namespaceResolver(
      config.repositories.flatMap((entry) => (entry.kind === 'proxy' ? [{ prefix: entry.prefix, namespaces: proxyNamespaces(entry) }] : [])),
    ),
  });
  const { host, port } = splitHostPort(config.listen);
  try {
    await app.listen({ host, port });
  } catch (error) {
    await registry.close();
    throw error;
  }
  const bound = app.server.address();
  const address = typeof bound === 'object' && bound !== null ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : config.listen;
  return {
    app,
    registry,
    address,
    async close() {
      await app.close();
      await registry.close();
    },
  };
}

/** JSON lines, or readable lines when writing to a terminal. */
export function createLogger(config: Config): PinoLogger {
  const pretty = config.log.format === 'pretty' || (config.log.format === 'auto' && process.stdout.isTTY === true);
  const options = { level: config.log.level, base: null, timestamp: pino.stdTimeFunctions.isoTime };
  if (!pretty) return pino(options);
  return pino(options, PinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }));
}
