import type { FastifyInstance } from 'fastify';
import { after, before } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { createApp } from '../../src/http/app.ts';
import { openSecurity } from '../../src/access-tls-limits.ts';
import { openRegistry, startServer, type Registry, type RunningServer } from '../../src/server.ts';
import { tempDir } from './tmp.ts';

/** Configuration for a test registry: key paths ("registry.deletes") to values. */
export type TestSettings = Record<string, unknown>;

export interface TestRegistry {
  /** http://127.0.0.1:PORT (https with TLS configured) */
  url: string;
  /** 127.0.0.1:PORT, as clients name the registry. */
  host: string;
  dataDir: string;
  server: RunningServer;
  /** Access-log and other log lines, parsed (empty unless asked for with `captureLogs`). */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

async function testConfig(dataDir: string, settings: TestSettings) {
  return loadConfig({ env: {}, overrides: { listen: '127.0.0.1:0', dataDir, 'log.level': 'silent', ...settings } });
}

/** A real Berth listening on a free loopback port, storing under a fresh temp dir. */
export async function startTestRegistry(settings: TestSettings = {}, options: { dataDir?: string; captureLogs?: boolean } = {}): Promise<TestRegistry> {
  const temp = options.dataDir === undefined ? await tempDir('berth-data') : undefined;
  const directory = options.dataDir ?? (temp?.path as string);
  const config = await testConfig(directory, settings);
  const { logs, logger } = testLogger(options.captureLogs === true);
  const server = await startServer(config, logger);
  return {
    url: `${server.security.https ? 'https' : 'http'}://${server.address}`,
    host: server.address,
    dataDir: directory,
    server,
    logs,
    async close() {
      await server.close();
      await temp?.remove();
    },
  };
}

/** A logger that keeps its lines, parsed, when `capture`; silent otherwise. */
function testLogger(capture: boolean) {
  const logs: Record<string, unknown>[] = [];
  const logger = capture ? pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) }) : pino({ level: 'silent' });
  return { logs, logger };
}

export interface TestApp {
  app: FastifyInstance;
  registry: Registry;
  /** Log lines, parsed (empty unless asked for with `captureLogs`). */
  logs: Record<string, unknown>[];
  /** Has access control read changed users and rules files now, instead of waiting for their check interval. */
  reloadFiles(): Promise<void>;
  close(): Promise<void>;
}

/** The HTTP app over fresh stores, not listening: for `app.inject()` tests. */
export async function createTestApp(settings: TestSettings = {}, options: { captureLogs?: boolean } = {}): Promise<TestApp> {
  const temp = await tempDir('berth-app');
  const config = await testConfig(temp.path, settings);
  const { logs, logger } = testLogger(options.captureLogs === true);
  const registry = await openRegistry(config, logger);
  const security = await openSecurity(config, logger);
  const app = createApp({
    ...security.app,
    router: registry.router,
    settings: {
      maxManifestBytes: config.registry.maxManifestBytes,
      chunkMinLength: config.registry.chunkMinLength ?? registry.blobs.chunkMinLength,
      autoMount: config.registry.autoMount,
    },
    v2Endpoints: registry.v2Endpoints,
  });
  await app.ready();
  return {
    app,
    registry,
    logs,
    reloadFiles: () => security.reloadFiles(),
    async close() {
      await app.close();
      await security.close();
      await registry.close();
      await temp.remove();
    },
  };
}

/**
 * One registry for a whole test file: started before the file's tests and
 * closed after them. Read its fields inside tests, not at load time.
 */
export function registryForFile(settings: TestSettings = {}, options: { captureLogs?: boolean } = {}): TestRegistry {
  const shared = {} as TestRegistry;
  before(async () => {
    Object.assign(shared, await startTestRegistry(settings, options));
  });
  after(() => shared.close());
  return shared;
}

/** The source of the kind configured for `name`, as the kind built it (the router holds it wrapped to record pulls). */
export function kindSourceFor<T>(registry: Pick<Registry, 'sources'>, name: string): T {
  const routes = [...registry.sources].sort((a, b) => b.prefix.length - a.prefix.length);
  const route = routes.find((each) => name.startsWith(each.prefix));
  if (route === undefined) throw new Error(`no source is configured for ${name}`);
  return route.source as T;
}
