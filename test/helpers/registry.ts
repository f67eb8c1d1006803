import type { FastifyInstance } from 'fastify';
import { after, before } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.ts';
import { createApp } from '../../src/http/app.ts';
import { openSecurity } from '../../src/security.ts';
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
export async function startTestRegistry(
  settings: TestSettings = {},
  options: { dataDir?: string; captureLogs?: boolean } = {},
): Promise<TestRegistry> {
  const temp = options.dataDir === undefined ? await tempDir('berth-data') : undefined;
  const directory = options.dataDir ?? (temp?.path as string);
  const config = await testConfig(directory, settings);
  const logs: Record<string, unknown>[] = [];
  const logger =
    options.captureLogs === true
      ? pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) })
      : pino({ level: 'silent' });
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

export interface TestApp {
  app: FastifyInstance;
  registry: Registry;
  close(): Promise<void>;
}

/** The HTTP app over fresh stores, not listening: for `app.inject()` tests. */
export async function createTestApp(settings: TestSettings = {}): Promise<TestApp> {
  const temp = await tempDir('berth-app');
  const config = await testConfig(temp.path, settings);
  const registry = await openRegistry(config, pino({ level: 'silent' }));
  const security = await openSecurity(config, pino({ level: 'silent' }));
  const app = createApp({
    ...security.app,
    router: registry.router,
    settings: {
      maxManifestBytes: config.registry.maxManifestBytes,
      chunkMinLength: config.registry.chunkMinLength ?? registry.blobs.chunkMinLength,
      autoMount: config.registry.autoMount,
    },
  });
  await app.ready();
  return {
    app,
    registry,
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
