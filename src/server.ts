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
import type { OperationsStore } from './meta/operations-store.ts';
import type { PostgresMetaStore } from './meta/postgres/postgres-meta-store.ts';
import { SqliteMetaStore } from './meta/sqlite/sqlite-meta-store.ts';
import { SqliteOperationsStore } from './meta/sqlite/sqlite-operations-store.ts';
import type { RegistryMetrics } from './metrics/metrics.ts';
import { Operations } from './ops/operations.ts';
import { createHostedContext, HostedSource, type HostedContext } from './registry/hosted.ts';
import type { RepositorySource } from './registry/repository.ts';
import { RepositoryRouter } from './registry/router.ts';
import { openSecurity, type Security } from './security.ts';
import { namespaceResolver, proxyNamespaces } from './sources/proxy/namespaces.ts';

/** The stores and the router built from a configuration: everything a command needs. */
export interface Registry {
  config: Config;
  blobs: BlobStore;
  meta: MetaStore;
  hosted: HostedContext;
  router: RepositoryRouter;
  logger: PinoLogger;
  /** GC, retention, quotas, events, metrics (docs/operations.md). */
  operations: Operations;
  close(): Promise<void>;
}

/** The one place that picks concrete drivers. */
export async function openRegistry(config: Config, logger: PinoLogger = createLogger(config)): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  const { blobs, sweepMultipart } = await openBlobStore(config, dataDir, logger);
  const meta: MetaStore = await openMetaStore(config, dataDir).catch(async (error: unknown) => {
    await blobs.close?.();
    throw error;
  });
  const operations = new Operations({
    config,
    blobs,
    meta,
    store: await operationsStoreFor(config, meta),
    logger,
    ...(sweepMultipart === undefined ? {} : { sweepMultipart }),
  });
  const hosted = createHostedContext(
    operations.blobs,
    meta,
    {
      deletes: config.registry.deletes,
      redirects: config.storage.redirects ?? blobs.redirectUrl !== undefined,
      ...(config.limits.maxBlobBytes === undefined ? {} : { maxBlobBytes: config.limits.maxBlobBytes }),
    },
    operations.policy,
  );
  const hostedSource = new HostedSource(hosted);
  const context: SourceContext = { blobs: operations.blobs, dataDir, redirects: hosted.options.redirects, logger, config, hosted, metrics: operations.metrics };
  const routes = await Promise.all(config.repositories.map(async (entry) => ({ prefix: entry.prefix, source: await sourceFor(entry, hostedSource, context) })));
  // Configured routes first: for an equal prefix (a kind configured at ""), the configured one wins over the default.
  const router = new RepositoryRouter([...routes, { prefix: '', source: hostedSource }]);
  operations.retainFrom(() => router.retainedBlobs());
  return {
    config,
    blobs,
    meta,
    hosted,
    router,
    logger,
    operations,
    async close() {
      await router.close();
      await operations.close();
      await meta.close();
      await blobs.close?.();
    },
  };
}

/** The blob store, and how to abort its abandoned multipart uploads where it has them (S3). */
interface OpenedBlobStore {
  blobs: BlobStore;
  sweepMultipart?: (cutoff: Date) => Promise<number>;
}

async function openBlobStore(config: Config, dataDir: string, logger: PinoLogger): Promise<OpenedBlobStore> {
  const storage = config.storage;
  switch (storage.driver) {
    case 'fs':
      return { blobs: await FsBlobStore.open(resolve(storage.fs.path ?? dataDir)) };
    case 's3': {
      // Drivers and kinds load only when configured: the AWS SDK alone costs a tenth of a second of start-up.
      const { S3BlobStore } = await import('./blobs/s3/s3-blob-store.ts');
      const blobs = await S3BlobStore.open({
        ...storage.s3,
        bucket: storage.s3.bucket as string,
        onBackgroundError: (message, error) => logger.warn({ err: error }, message),
        logger: logger.child({ store: 's3' }),
      });
      return { blobs, sweepMultipart: (cutoff) => blobs.sweepMultipartUploads(cutoff) };
    }
  }
}

async function openMetaStore(config: Config, dataDir: string): Promise<MetaStore> {
  const metadata = config.metadata;
  switch (metadata.driver) {
    case 'sqlite':
      return SqliteMetaStore.open(resolve(metadata.sqlite.path ?? join(dataDir, 'berth.db')));
    case 'postgres': {
      const [{ PostgresMetaStore }, { poolConfig }] = await Promise.all([
        import('./meta/postgres/postgres-meta-store.ts'),
        import('./meta/postgres/pool-config.ts'),
      ]);
      return PostgresMetaStore.open(poolConfig(metadata.postgres));
    }
  }
}

/** The operations store over the same database as the MetaStore. */
async function operationsStoreFor(config: Config, meta: MetaStore): Promise<OperationsStore> {
  switch (config.metadata.driver) {
    case 'sqlite':
      return new SqliteOperationsStore((meta as SqliteMetaStore).database);
    case 'postgres': {
      const { PostgresOperationsStore } = await import('./meta/postgres/postgres-operations-store.ts');
      return new PostgresOperationsStore((meta as PostgresMetaStore).pool);
    }
  }
}

/** What sources other than hosted are built from. */
interface SourceContext {
  blobs: BlobStore;
  dataDir: string;
  redirects: boolean;
  logger: PinoLogger;
  config: Config;
  hosted: HostedContext;
  /** Cache hit counters for the kinds that cache (`metrics.cacheCounter(kind, cache)`). */
  metrics: RegistryMetrics;
}

async function sourceFor(entry: Config['repositories'][number], hostedSource: HostedSource, context: SourceContext): Promise<RepositorySource> {
  switch (entry.kind) {
    case 'hosted':
      return hostedSource;
    case 'archive': {
      const { ArchiveSource } = await import('./sources/archive/archive-source.ts');
      return new ArchiveSource(
        { ...entry, maxManifestBytes: context.config.registry.maxManifestBytes, indexCounter: context.metrics.cacheCounter('archive', 'index') },
        context.blobs,
        context.logger,
      );
    }
    case 'droplet': {
      const [{ createDropletSource }, { SqliteDropletIndex }] = await Promise.all([
        import('./sources/droplet/create.ts'),
        import('./sources/droplet/sqlite-droplet-index.ts'),
      ]);
      return createDropletSource(entry, { ...context, index: SqliteDropletIndex.open(join(context.dataDir, 'droplets.db')) });
    }
    case 'proxy': {
      const { ProxySource } = await import('./sources/proxy/proxy-source.ts');
      return new ProxySource(entry, {
        hosted: context.hosted,
        logger: context.logger,
        spoolDir: join(context.dataDir, 'proxy-spool'),
        counters: { manifest: context.metrics.cacheCounter('proxy', 'manifest'), blob: context.metrics.cacheCounter('proxy', 'blob') },
      });
    }
  }
}

export interface RunningServer {
  app: FastifyInstance;
  registry: Registry;
  /** The address actually bound, as HOST:PORT. */
  address: string;
  /** Whether it speaks HTTPS, and the development CA to trust with `tls.selfSigned`. */
  security: Pick<Security, 'https' | 'caCert'>;
  /** Stops accepting, finishes in-flight requests, closes the stores. */
  close(): Promise<void>;
}

/** Opens the stores, builds the app and listens where the configuration says. */
export async function startServer(config: Config, logger: PinoLogger = createLogger(config)): Promise<RunningServer> {
  const registry = await openRegistry(config, logger);
  let security: Security;
  try {
    security = await openSecurity(config, logger);
  } catch (error) {
    await registry.close();
    throw error;
  }
  const app = createApp({
    ...security.app,
    router: registry.router,
    settings: {
      maxManifestBytes: config.registry.maxManifestBytes,
      chunkMinLength: config.registry.chunkMinLength ?? registry.blobs.chunkMinLength,
      autoMount: config.registry.autoMount,
    },
    logger,
    resolveNamespace: namespaceResolver(
      config.repositories.flatMap((entry) => (entry.kind === 'proxy' ? [{ prefix: entry.prefix, namespaces: proxyNamespaces(entry) }] : [])),
    ),
    observers: registry.operations.observers(),
    extensions: registry.operations.extensions(),
    onStorageFull: (store) => registry.operations.metrics.storageFull.inc({ store }),
  });
  const { host, port } = splitHostPort(config.listen);
  try {
    await app.listen({ host, port });
  } catch (error) {
    await security.close();
    await registry.close();
    throw error;
  }
  registry.operations.start();
  const bound = app.server.address();
  const address = typeof bound === 'object' && bound !== null ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : config.listen;
  return {
    app,
    registry,
    address,
    security: { https: security.https, ...(security.caCert === undefined ? {} : { caCert: security.caCert }) },
    async close() {
      await app.close();
      await security.close();
      await registry.operations.stop();
      await registry.close();
    },
  };
}

/**
 * JSON lines, or readable lines when writing to a terminal. `berth serve`
 * logs to stdout; commands whose output is a report (gc, usage, retention,
 * rootfs import) log to stderr (2), so stdout holds the report alone.
 */
export function createLogger(config: Config, fd: 1 | 2 = 1): PinoLogger {
  const stream = fd === 1 ? process.stdout : process.stderr;
  const pretty = config.log.format === 'pretty' || (config.log.format === 'auto' && stream.isTTY === true);
  const options = { level: config.log.level, base: null, timestamp: pino.stdTimeFunctions.isoTime };
  if (!pretty) return fd === 1 ? pino(options) : pino(options, pino.destination({ fd, sync: true }));
  return pino(options, PinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: fd }));
}
