import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino, type Logger as PinoLogger } from 'pino';
import type { BlobStore } from './blobs/blob-store.ts';
import { FsBlobStore } from './blobs/fs/fs-blob-store.ts';
import type { Config } from './config/schema.ts';
import { splitHostPort } from './config/units.ts';
import { RegistryError } from './errors/registry-error.ts';
import { dependencies } from './errors/unavailable.ts';
import { Readiness, type ReadinessOptions } from './health/readiness.ts';
import { createApp } from './http/app.ts';
import { dropletEndpoints, type DropletReceiver } from './http/droplets.ts';
import type { V2Endpoint } from './http/v2-routes.ts';
import type { BrowseIndex } from './meta/browse-index.ts';
import type { DropletStore } from './meta/droplet-store.ts';
import type { MetaStore } from './meta/meta-store.ts';
import type { OperationsStore } from './meta/operations-store.ts';
import { SqliteBrowseIndex } from './meta/sqlite/sqlite-browse-index.ts';
import { SqliteMetaStore } from './meta/sqlite/sqlite-meta-store.ts';
import { SqliteOperationsStore } from './meta/sqlite/sqlite-operations-store.ts';
import type { RegistryMetrics } from './metrics/metrics.ts';
import { Operations } from './ops/operations.ts';
import { createHostedContext, HostedSource, type HostedContext } from './registry/hosted.ts';
import type { RepositorySource } from './registry/repository.ts';
import { RepositoryRouter } from './registry/router.ts';
import { openSecurity, type Security } from './access-tls-limits.ts';
import { proxyNamespaces } from './sources/proxy/namespaces.ts';
import type { ProxyCaches } from './sources/proxy/proxy-caches.ts';
import { passesInThreads } from './passes-in-threads.ts';
import { webUi } from './ui-server.ts';
import { alone, type Peers } from './io/peers.ts';

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
  /** Endpoints below /v2/<name>/ the configured kinds add (droplet uploads), for `createApp`. */
  v2Endpoints: V2Endpoint[];
  /** The web UI's reads over the namespace (docs/ui.md). */
  browse: BrowseIndex;
  /** Each configured prefix's kind and its source itself (the router holds them wrapped to record pulls), the default hosted one last. */
  sources: { prefix: string; kind: Config['repositories'][number]['kind']; source: RepositorySource }[];
  hostedSource: RepositorySource;
  /** The pull-through caches' budgets and schedules, when any cache is configured (docs/proxy.md). */
  proxyCaches?: ProxyCaches;
  close(): Promise<void>;
}

/** The one place that picks concrete drivers. */
export async function openRegistry(config: Config, logger: PinoLogger = createLogger(config), peers: Peers = alone()): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  const { blobs, sweepMultipart } = await openBlobStore(config, dataDir, logger);
  const { meta, operationsStore, browse, dropletStore } = await openMetaStore(config, dataDir).catch(async (error: unknown) => {
    await blobs.close?.();
    throw error;
  });
  const operations = new Operations({
    config,
    blobs,
    meta,
    store: operationsStore,
    logger,
    peers,
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
    operations.changes,
  );
  const hostedSource = operations.recordPulls(new HostedSource(hosted));
  const proxyCaches = config.repositories.some((entry) => entry.kind === 'proxy')
    ? new (await import('./sources/proxy/proxy-caches.ts')).ProxyCaches({
        config,
        operations: operations.store,
        meta,
        blobs,
        hosted,
        logger,
        metrics: operations.metrics.proxy,
        counters: { manifest: operations.metrics.cacheCounter('proxy', 'manifest'), blob: operations.metrics.cacheCounter('proxy', 'blob') },
        spoolDir: join(dataDir, 'proxy-spool'),
        flushPulls: async () => operations.pulls?.flush(),
        peers,
        ...(operations.changes === undefined ? {} : { changes: operations.changes }),
      })
    : undefined;
  const context: SourceContext = {
    blobs: operations.blobs,
    meta,
    dropletStore,
    droplets: [],
    dataDir,
    redirects: hosted.options.redirects,
    logger,
    config,
    hosted,
    metrics: operations.metrics,
    proxyCaches,
    peers,
  };
  // Droplet uploads go to the droplet source behind the route (which records pulls around it).
  const dropletRoutes = new Map<RepositorySource, DropletReceiver>();
  const kindSources: Registry['sources'] = [];
  const routes = await Promise.all(
    config.repositories.map(async (entry) => {
      if (entry.kind === 'hosted') {
        kindSources.push({ prefix: entry.prefix, kind: entry.kind, source: hostedSource });
        return { prefix: entry.prefix, source: hostedSource };
      }
      const inner = await sourceFor(entry, hostedSource, context);
      const source = operations.recordPulls(inner);
      const receiver = context.droplets.find((droplet) => droplet === inner);
      if (receiver !== undefined) dropletRoutes.set(source, receiver);
      kindSources.push({ prefix: entry.prefix, kind: entry.kind, source: inner });
      return { prefix: entry.prefix, source, ...(entry.kind === 'proxy' ? { mirrors: proxyNamespaces(entry) } : {}) };
    }),
  );
  // Configured routes first: for an equal prefix (a kind configured at ""), the configured one wins over the default.
  const router = new RepositoryRouter([...routes, { prefix: '', source: hostedSource }]);
  operations.retainFrom(() => router.retainedBlobs());
  proxyCaches?.register(operations);
  return {
    config,
    blobs,
    meta,
    hosted,
    router,
    logger,
    operations,
    v2Endpoints:
      dropletRoutes.size === 0
        ? []
        : dropletEndpoints((name) => {
            const source = router.sourceFor(name);
            return source === undefined ? undefined : dropletRoutes.get(source);
          }),
    browse,
    sources: [...kindSources, { prefix: '', kind: 'hosted' as const, source: hostedSource }],
    hostedSource,
    ...(proxyCaches === undefined ? {} : { proxyCaches }),
    async close() {
      await proxyCaches?.close();
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

/** What the metadata driver opens over one database: the MetaStore and the stores beside it. */
interface MetadataStores {
  meta: MetaStore;
  operationsStore: OperationsStore;
  browse: BrowseIndex;
  /** The droplet tables, opened when a droplet repository first needs them. */
  dropletStore: () => Promise<DropletStore>;
}

/** The MetaStore, and the operations store, the UI's browse index and the droplet store over the same database. */
async function openMetaStore(config: Config, dataDir: string): Promise<MetadataStores> {
  const metadata = config.metadata;
  switch (metadata.driver) {
    case 'sqlite': {
      const meta = await SqliteMetaStore.open(resolve(metadata.sqlite.path ?? join(dataDir, 'berth.db')));
      const dropletStore = once(async () => new (await import('./meta/sqlite/sqlite-droplet-store.ts')).SqliteDropletStore(meta.database));
      return { meta, operationsStore: new SqliteOperationsStore(meta.database), browse: new SqliteBrowseIndex(meta.database), dropletStore };
    }
    case 'postgres': {
      const [{ PostgresMetaStore }, { PostgresOperationsStore }, { PostgresBrowseIndex }, { poolConfig }] = await Promise.all([
        import('./meta/postgres/postgres-meta-store.ts'),
        import('./meta/postgres/postgres-operations-store.ts'),
        import('./meta/postgres/postgres-browse-index.ts'),
        import('./meta/postgres/pool-config.ts'),
      ]);
      const meta = await PostgresMetaStore.open(poolConfig(metadata.postgres));
      const dropletStore = once(async () => new (await import('./meta/postgres/postgres-droplet-store.ts')).PostgresDropletStore(meta.pool));
      return { meta, operationsStore: new PostgresOperationsStore(meta.pool), browse: new PostgresBrowseIndex(meta.pool), dropletStore };
    }
  }
}

/** `open`, run on the first call; every call gets its promise. */
function once<T>(open: () => Promise<T>): () => Promise<T> {
  let opened: Promise<T> | undefined;
  return () => {
    opened ??= open();
    return opened;
  };
}

/** What sources other than hosted are built from. */
interface SourceContext {
  blobs: BlobStore;
  meta: MetaStore;
  dropletStore: () => Promise<DropletStore>;
  /** Droplet sources, collected as they are built (for the upload endpoint). */
  droplets: (RepositorySource & DropletReceiver)[];
  dataDir: string;
  redirects: boolean;
  logger: PinoLogger;
  config: Config;
  hosted: HostedContext;
  /** Cache hit counters for the kinds that cache (`metrics.cacheCounter(kind, cache)`). */
  metrics: RegistryMetrics;
  /** Builds pull-through caches (with their budgets and schedules); present when any is configured. */
  proxyCaches: ProxyCaches | undefined;
  /** The other workers: one of them scans archive directories and imports rootfs files. */
  peers: Peers;
}

async function sourceFor(entry: Config['repositories'][number], hostedSource: RepositorySource, context: SourceContext): Promise<RepositorySource> {
  switch (entry.kind) {
    case 'hosted':
      return hostedSource;
    case 'archive': {
      const { ArchiveSource } = await import('./sources/archive/archive-source.ts');
      return new ArchiveSource(
        { ...entry, maxManifestBytes: context.config.registry.maxManifestBytes, indexCounter: context.metrics.cacheCounter('archive', 'index') },
        context.blobs,
        context.logger,
        context.peers,
      );
    }
    case 'droplet': {
      const { createDropletSource } = await import('./sources/droplet/create.ts');
      const source = createDropletSource(entry, {
        ...context,
        store: await context.dropletStore(),
        deletes: context.config.registry.deletes,
        workers: { leader: context.peers.leader, count: context.peers.count },
      });
      context.droplets.push(source);
      return source;
    }
    case 'proxy': {
      if (context.proxyCaches === undefined) throw new Error('repositories: a proxy entry needs the proxy caches built');
      return context.proxyCaches.source(entry);
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

/**
 * Opens the stores, builds the app and listens where the configuration says.
 * One of several workers (`peers`) shares the port with the others; only
 * the leader runs the schedules and delivers events (src/workers/).
 */
export async function startServer(config: Config, logger: PinoLogger = createLogger(config), peers: Peers = alone()): Promise<RunningServer> {
  const registry = await openRegistry(config, logger, peers);
  let security: Security;
  try {
    security = await openSecurity(config, logger, peers);
  } catch (error) {
    await registry.close();
    throw error;
  }
  const ui = config.ui.enabled ? webUi(registry, security.sessions, peers) : undefined;
  const readiness = createReadiness(config, registry, logger);
  const app = createApp({
    ...security.app,
    readiness,
    ...(peers.count > 1 ? { health: leaderAnswers(peers) } : {}),
    router: registry.router,
    settings: {
      maxManifestBytes: config.registry.maxManifestBytes,
      chunkMinLength: config.registry.chunkMinLength ?? registry.blobs.chunkMinLength,
      autoMount: config.registry.autoMount,
    },
    logger,
    observers: [...registry.operations.observers(), ...(ui === undefined ? [] : [ui.events])],
    extensions: [...registry.operations.extensions(), ...(ui === undefined ? [] : [ui.extension])],
    v2Endpoints: registry.v2Endpoints,
    onStorageFull: (store) => registry.operations.metrics.storageFull.inc({ store }),
  });
  const { host, port } = splitHostPort(config.listen);
  try {
    await app.listen({ host, port, ...(peers.count > 1 ? { reusePort: true } : {}) });
  } catch (error) {
    await security.close();
    await registry.close();
    throw error;
  }
  // On the embedded store a pass's queries would run on this thread: passes get threads of their own.
  if (peers.leader) registry.operations.start(config.metadata.driver === 'sqlite' ? passesInThreads(config) : undefined);
  await readiness.start();
  const bound = app.server.address();
  const address = typeof bound === 'object' && bound !== null ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : config.listen;
  return {
    app,
    registry,
    address,
    security: { https: security.https, ...(security.caCert === undefined ? {} : { caCert: security.caCert }) },
    async close() {
      readiness.stop();
      await app.close();
      await security.close();
      await registry.operations.stop();
      await registry.close();
    },
  };
}

/** How long the leader's event loop may stay silent before other workers' `/livez` fail too. */
const leaderSilenceMs = 10_000;

/**
 * Liveness of a worker beside others: the leader (the main thread) cannot be
 * restarted on its own, so when its event loop is blocked every worker's
 * `/livez` fails and the process manager restarts the process. The leader's
 * own `/livez` simply does not answer then.
 */
function leaderAnswers(peers: Peers): () => Promise<void> {
  return async () => {
    const silent = peers.leaderSilentMs();
    if (silent <= leaderSilenceMs) return;
    throw new RegistryError('UNKNOWN', `worker 0 (the leader) has not answered for ${Math.round(silent / 1000)} s: its event loop is blocked`, { status: 503 });
  };
}

/** Background checks of the stores, told to the logs and metrics when they change. */
function createReadiness(config: Config, registry: Registry, logger: PinoLogger): Readiness {
  const { meta, blobs } = registry;
  const metrics = registry.operations.metrics;
  const probes: ReadinessOptions['probes'] = {};
  if (meta.ping !== undefined) probes.metadata = (signal) => (meta.ping as NonNullable<MetaStore['ping']>).call(meta, signal);
  if (blobs.ping !== undefined) probes.blobs = (signal) => (blobs.ping as NonNullable<BlobStore['ping']>).call(blobs, signal);
  for (const dependency of Object.keys(probes)) metrics.dependencyUp.set({ dependency }, 1);
  return new Readiness({
    probes,
    interval: config.health.interval,
    timeout: config.health.timeout,
    onChange: (dependency, state) => {
      metrics.dependencyUp.set({ dependency }, state.up ? 1 : 0);
      if (state.up) {
        logger.info({ dependency }, `the ${dependencies[dependency]} is reachable again; ready`);
      } else {
        metrics.dependencyOutages.inc({ dependency });
        logger.warn({ dependency, reason: state.reason }, `the ${dependencies[dependency]} is unreachable; not ready`);
      }
    },
  });
}

/**
 * JSON lines, or readable lines when writing to a terminal. `berth serve`
 * logs to stdout; commands whose output is a report (gc, usage, retention,
 * rootfs import) log to stderr (2), so stdout holds the report alone.
 * `shared`: several worker threads write to the same descriptor, so each
 * line goes out in one write of its own and lines never interleave.
 */
export function createLogger(config: Config, fd: 1 | 2 = 1, options: { shared?: boolean } = {}): PinoLogger {
  const stream = fd === 1 ? process.stdout : process.stderr;
  const pretty = config.log.format === 'pretty' || (config.log.format === 'auto' && stream.isTTY === true);
  const settings = { level: config.log.level, base: null, timestamp: isoTimeOncePerMillisecond() };
  if (!pretty) return fd === 1 && options.shared !== true ? pino(settings) : pino(settings, pino.destination({ fd, sync: true }));
  // Loaded only for a terminal: servers writing JSON lines never pay for it.
  const pinoPretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  return pino(settings, pinoPretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: fd, sync: options.shared === true }));
}

/** pino's ISO time, formatted once per millisecond however many lines share it (the access log writes one per request). */
function isoTimeOncePerMillisecond(): () => string {
  let formattedAt = -1;
  let formatted = '';
  return () => {
    const now = Date.now();
    if (now !== formattedAt) {
      formattedAt = now;
      formatted = `,"time":"${new Date(now).toISOString()}"`;
    }
    return formatted;
  };
}
