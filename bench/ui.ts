// Server time of the web UI's repositories page and searches at 100,000
// repositories (docs/ui.md): a section of `npm run bench` (SQLite), and alone
// `npm run bench:ui [-- --repositories 100000] [-- --postgres] [-- --no-sqlite]`. The data goes straight into the metadata store (through the
// MetaStore on SQLite; bulk SQL on PostgreSQL, which fires the same
// triggers); requests go through app.inject, so the figures are the
// server's own time without a network or a client in them.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from '../src/config/load.ts';
import { SqliteMetaStore } from '../src/meta/sqlite/sqlite-meta-store.ts';
import { digestOf } from '../src/oci/digest.ts';
import { mediaTypes } from '../src/oci/media-types.ts';
import { parseRepositoryName, parseTag } from '../src/oci/names.ts';
import { startServer } from '../src/server.ts';
import { authSettings, basic } from '../test/helpers/auth.ts';
import { postgresMissing, startTestPostgres } from '../test/helpers/postgres.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { median } from './measure.ts';
import type { Row } from './report.ts';

export interface UiBenchOptions {
  repositories: number;
  requests: number;
  sqlite: boolean;
  postgres: boolean;
  log(message: string): void;
}

/** The target of docs/ui.md for every request measured. */
const targetMs = 50;

const teams = ['payments', 'search', 'platform', 'data', 'mobile', 'web', 'infra', 'ml', 'security', 'growth'];
const apps = ['api', 'worker', 'frontend', 'gateway', 'scheduler', 'indexer', 'billing', 'auth', 'cache', 'exporter'];
/** A realistic spread of names: team/app-N, every hundredth under public/. */
function nameOf(index: number): string {
  const team = index % 100 === 0 ? 'public' : `${teams[index % teams.length]}-${index % 37}`;
  return `${team}/${apps[Math.floor(index / 10) % apps.length]}-${index}`;
}

const manifestBytes = (index: number, layer: string, config: string) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, digest: config, size: 100 },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: layer, size: 1000 + index }],
    }),
  );

async function loadSqlite(path: string, count: number, log: (message: string) => void): Promise<void> {
  const meta = SqliteMetaStore.open(path);
  // Loading only: the benchmark's data need not survive a power cut.
  meta.database.exec('PRAGMA synchronous = OFF');
  const config = digestOf(Buffer.from('bench config'));
  const started = performance.now();
  for (let index = 0; index < count; index++) {
    const name = parseRepositoryName(nameOf(index));
    const layer = digestOf(Buffer.from(`layer ${index}`));
    await meta.blobs.link(name, config, 100);
    await meta.blobs.link(name, layer, 1000 + index);
    const bytes = manifestBytes(index, layer, config);
    await meta.manifests.put(name, { digest: digestOf(bytes), mediaType: mediaTypes.ociManifest, bytes }, { blobs: [config, layer], children: [] }, [parseTag('latest')]);
    if (index % 20000 === 19999) log(`${index + 1} repositories loaded`);
  }
  log(`loaded ${count} repositories through the MetaStore in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  await meta.close();
}

async function loadPostgres(
  database: { host: string; port: number; user: string; database: string },
  count: number,
  log: (message: string) => void,
  open: () => Promise<FastifyInstance>,
): Promise<FastifyInstance> {
  const app = await open();
  const pg = await import('pg');
  const client = new pg.default.Client(database);
  await client.connect();
  const started = performance.now();
  // Same names as on SQLite; the triggers keep repository_stats as for pushes.
  await client.query('BEGIN');
  await client.query(`INSERT INTO repositories (name, created_at) SELECT unnest($1::text[]), now()`, [Array.from({ length: count }, (_, index) => nameOf(index))]);
  await client.query(`INSERT INTO blobs (digest, size, created_at) SELECT 'sha256:' || lpad(to_hex(i), 64, '0'), 1000 + i, now() FROM generate_series(0, $1::int - 1) AS i`, [
    count,
  ]);
  await client.query(`INSERT INTO repository_blobs (repository_id, digest, linked_at) SELECT r.id, 'sha256:' || lpad(to_hex(r.id::int - 1), 64, '0'), now() FROM repositories r`);
  await client.query(
    `INSERT INTO manifests (repository_id, digest, media_type, content, size, created_at)
     SELECT r.id, 'sha256:' || lpad(to_hex(r.id::int + 10000000), 64, '0'), $1, convert_to('{}', 'UTF8'), 2, now() - (r.id || ' seconds')::interval FROM repositories r`,
    [mediaTypes.ociManifest],
  );
  await client.query(`INSERT INTO tags (repository_id, name, digest, updated_at) SELECT m.repository_id, 'latest', m.digest, m.created_at FROM manifests m`);
  await client.query('COMMIT');
  // As after a day of autovacuum: hint bits set, visibility map and statistics current.
  await client.query('VACUUM ANALYZE');
  await client.end();
  log(`loaded ${count} repositories into PostgreSQL with bulk SQL in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  return app;
}

/** p50 and p95 in ms of `requests` injected GETs, after a warm-up. */
async function measure(app: FastifyInstance, requests: number, url: string, authorization?: string): Promise<{ p50: number; p95: number; rows: number }> {
  const headers = authorization === undefined ? {} : { authorization };
  const times: number[] = [];
  let rows = 0;
  for (let index = 0; index < requests + 20; index++) {
    const started = performance.now();
    const response = await app.inject({ method: 'GET', url, headers });
    const elapsed = performance.now() - started;
    if (response.statusCode !== 200) throw new Error(`${url}: ${response.statusCode} ${response.body.slice(0, 300)}`);
    if (index >= 20) times.push(elapsed);
    rows = (response.body.match(/<td><a |"name":/g) ?? []).length;
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: median(times), p95: sorted[Math.floor(sorted.length * 0.95)] ?? Number.NaN, rows };
}

/** Every case against `app`: a markdown table (printed when run alone) and the report's rows. */
async function run(label: string, app: FastifyInstance, options: UiBenchOptions): Promise<{ table: string; rows: Row[] }> {
  const count = options.repositories;
  const admin = basic('admin', 'admin-pass');
  const one = nameOf(Math.floor(count * 0.42)).split('/')[1] as string;
  const cases: [string, string, string | undefined][] = [
    ['repositories page, first page by name (admin)', '/ui/', admin],
    ['repositories page, page 3 by name (admin)', '/ui/?after=payments-10%2Fworker-999', admin],
    ['repositories page by size (admin)', '/ui/?sort=size', admin],
    ['repositories page by last push (admin)', '/ui/?sort=pushed', admin],
    [`search "${one}" (one match, admin)`, `/ui/?q=${encodeURIComponent(one)}&partial=1`, admin],
    ['search "ex" (2 letters, admin)', '/ui/?q=ex&partial=1', admin],
    ['search "worker" (common, admin)', '/ui/?q=worker&partial=1', admin],
    ['search "worker" by size (admin)', '/ui/?q=worker&sort=size&partial=1', admin],
    ['search prefix "security-3/" (admin)', '/ui/?q=security-3%2F&match=prefix&partial=1', admin],
    ['JSON API search "scheduler-7" (admin)', '/berth/api/v1/repositories?q=scheduler-7', admin],
    ['repositories page (anonymous, sees 1 %)', '/ui/', undefined],
    ['search "api" (anonymous, sees 1 %)', '/ui/?q=api&partial=1', undefined],
  ];
  let table = `\n### ${label}, ${count} repositories, ${options.requests} requests each (server time through inject)\n\n| request | rows | p50 ms | p95 ms |\n| --- | ---: | ---: | ---: |\n`;
  const rows: Row[] = [];
  for (const [name, url, authorization] of cases) {
    const result = await measure(app, options.requests, url, authorization);
    table += `| ${name} | ${result.rows} | ${result.p50.toFixed(2)} | ${result.p95.toFixed(2)} |\n`;
    rows.push({
      section: 'web UI',
      metric: `${label}, ${count} repositories: ${name}, p50 server time (p95 ${result.p95.toFixed(1)} ms)`,
      unit: 'ms',
      better: 'lower',
      berth: result.p50,
      target: `≤ ${targetMs} ms p50`,
      met: result.p50 <= targetMs,
    });
  }
  return { table, rows };
}

/** Loads the repositories into each database asked for and measures every case; the tables as markdown and the rows. */
export async function uiSection(options: UiBenchOptions): Promise<{ markdown: string; rows: Row[] }> {
  const { repositories: count, log } = options;
  const results: { table: string; rows: Row[] }[] = [];
  const work = await tempDir('berth-bench-ui');
  try {
    const rules = {
      admins: ['admin'],
      rules: [
        { repositories: '**', grants: { '*': ['pull'] } },
        { repositories: 'public/**', anonymous: ['pull'], grants: { '*': ['pull'] } },
      ],
    };
    const settings = await authSettings(work.path, { users: { admin: 'admin-pass' }, rules: rules as never });
    const start = async (dataDir: string, extra: Record<string, unknown> = {}) => {
      const config = await loadConfig({ env: {}, overrides: { listen: '127.0.0.1:0', dataDir, 'log.level': 'silent', 'gc.interval': 0, ...settings, ...extra } });
      return startServer(config, pino({ level: 'silent' }));
    };
    if (options.sqlite) {
      const sqliteDir = join(work.path, 'sqlite');
      await loadSqlite(join(sqliteDir, 'berth.db'), count, log);
      const sqlite = await start(sqliteDir);
      try {
        results.push(await run('SQLite', sqlite.app, options));
      } finally {
        await sqlite.close();
      }
    }
    if (options.postgres) {
      const missing = postgresMissing();
      if (missing !== false) throw new Error(missing);
      const cluster = await startTestPostgres();
      try {
        const database = await cluster.createDatabase();
        let server: Awaited<ReturnType<typeof start>> | undefined;
        const app = await loadPostgres(database, count, log, async () => {
          server = await start(join(work.path, 'postgres'), {
            'metadata.driver': 'postgres',
            'metadata.postgres.host': database.host,
            'metadata.postgres.port': database.port,
            'metadata.postgres.user': database.user,
            'metadata.postgres.database': database.database,
          });
          return server.app;
        });
        try {
          results.push(await run('PostgreSQL', app, options));
        } finally {
          await server?.close();
        }
      } finally {
        await cluster.close();
      }
    }
  } finally {
    await work.remove();
  }
  return { markdown: results.map((result) => result.table).join(''), rows: results.flatMap((result) => result.rows) };
}

if (import.meta.main) {
  const { values: flags } = parseArgs({
    options: {
      repositories: { type: 'string', default: '100000' },
      requests: { type: 'string', default: '200' },
      postgres: { type: 'boolean', default: false },
      'no-sqlite': { type: 'boolean', default: false },
    },
  });
  const { markdown } = await uiSection({
    repositories: Number(flags.repositories),
    requests: Number(flags.requests),
    sqlite: !flags['no-sqlite'],
    postgres: flags.postgres,
    log: (message) => process.stderr.write(`[bench:ui] ${message}\n`),
  });
  process.stdout.write(markdown);
}
