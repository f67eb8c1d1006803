import { existsSync, readdirSync } from 'node:fs';
import { chown, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { after, before } from 'node:test';
import pg from 'pg';
import { missingPackages, run } from './tools.ts';
import { tempDir } from './tmp.ts';

/** How to reach one database of the test cluster (over its unix socket). */
export interface PostgresDatabase {
  /** The socket directory. */
  host: string;
  port: number;
  user: string;
  database: string;
}

export interface TestPostgres {
  /** A new, empty database in the cluster. */
  createDatabase(): Promise<PostgresDatabase>;
  /** Stops the server as an outage would (`pg_ctl stop -m fast` or `immediate`), keeping the cluster. */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** Starts the stopped server again. */
  start(): Promise<void>;
  /** The unix socket the server listens on. */
  socketPath: string;
  /** Stops the server and deletes the cluster. */
  close(): Promise<void>;
}

const superuser = 'postgres';
// Only a unix socket in the cluster's own directory, so the number never collides.
const socketPort = 5432;

/** The directory holding initdb, pg_ctl and postgres: PATH first, then Debian's versioned directories. */
function postgresBinDir(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  if (onPath.status === 0) {
    const found = onPath.stdout.trim();
    const dir = found.slice(0, found.lastIndexOf('/'));
    if (existsSync(join(dir, 'pg_ctl'))) return dir;
  }
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name) && existsSync(join(root, name, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

const runningAsRoot = process.getuid?.() === 0;

/** Why PostgreSQL tests cannot run here, or false when they can. `.ci/run` installs what they need. */
export function postgresMissing(): string | false {
  if (postgresBinDir() === undefined) return missingPackages([{ what: 'the PostgreSQL server binaries', debianPackage: 'postgresql' }]);
  if (runningAsRoot && spawnSync('id', ['-u', superuser], { stdio: 'ignore' }).status !== 0) {
    return 'running as root needs the "postgres" user to run the server (created by the Debian package postgresql)';
  }
  return false;
}

function serverOptions(socketDir: string): string {
  return [
    "-c listen_addresses=''",
    `-c unix_socket_directories=${socketDir}`,
    `-c port=${socketPort}`,
    // Durability is worthless for a cluster deleted after the run; speed is not.
    '-c fsync=off',
    '-c synchronous_commit=off',
    '-c full_page_writes=off',
    '-c max_connections=200',
    '-c shared_buffers=32MB',
  ].join(' ');
}

/**
 * A throwaway cluster: initdb into a temp directory (as the postgres user
 * when running as root, since the server refuses root), listening only on a
 * unix socket there. Its default collation is a natural-language one (ICU
 * en-US), so anything that forgets byte order shows up in tests.
 */
export async function startTestPostgres(): Promise<TestPostgres> {
  const binDir = postgresBinDir();
  if (binDir === undefined) throw new Error(postgresMissing() || 'PostgreSQL is missing');
  const dir = await tempDir('berth-pg');
  const dataDir = join(dir.path, 'data');
  const asServerUser = async (command: string, args: string[]): Promise<string> =>
    runningAsRoot ? run('runuser', ['-u', superuser, '--', join(binDir, command), ...args]) : run(join(binDir, command), args);
  let started = false;
  try {
    if (runningAsRoot) {
      const uid = Number((await run('id', ['-u', superuser])).trim());
      const gid = Number((await run('id', ['-g', superuser])).trim());
      await chown(dir.path, uid, gid);
    }
    await asServerUser('initdb', [
      '-D',
      dataDir,
      '-U',
      superuser,
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C.UTF-8',
      '--locale-provider=icu',
      '--icu-locale=en-US',
      '--no-sync',
      '--no-instructions',
    ]);
    await asServerUser('pg_ctl', ['-D', dataDir, '-l', join(dir.path, 'server.log'), '-o', serverOptions(dir.path), '-w', '-t', '60', 'start']);
    started = true;
  } catch (error) {
    const log = await readFile(join(dir.path, 'server.log'), 'utf8').catch(() => '');
    await dir.remove();
    throw new Error(`could not start a test PostgreSQL: ${(error as Error).message}\n${log}`, { cause: error });
  }
  const startCommand = ['-D', dataDir, '-l', join(dir.path, 'server.log'), '-o', serverOptions(dir.path), '-w', '-t', '60', 'start'];
  let databases = 0;
  const connection = (database: string): PostgresDatabase => ({ host: dir.path, port: socketPort, user: superuser, database });
  return {
    async createDatabase() {
      const name = `berth_test_${++databases}`;
      const client = new pg.Client(connection('postgres'));
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return connection(name);
    },
    socketPath: join(dir.path, `.s.PGSQL.${socketPort}`),
    async stop(mode) {
      await asServerUser('pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
    },
    async start() {
      await asServerUser('pg_ctl', startCommand);
    },
    async close() {
      if (started) await asServerUser('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      await dir.remove();
    },
  };
}

/** Registry settings (key paths) for metadata in `database`. */
export function postgresMetadataSettings(database: PostgresDatabase): Record<string, unknown> {
  return {
    'metadata.driver': 'postgres',
    'metadata.postgres.host': database.host,
    'metadata.postgres.port': database.port,
    'metadata.postgres.user': database.user,
    'metadata.postgres.database': database.database,
  };
}

/** The same as BERTH_* variables, for a `berth` child process. */
export function postgresMetadataEnvironment(database: PostgresDatabase): Record<string, string> {
  return {
    BERTH_METADATA_DRIVER: 'postgres',
    BERTH_METADATA_POSTGRES_HOST: database.host,
    BERTH_METADATA_POSTGRES_PORT: String(database.port),
    BERTH_METADATA_POSTGRES_USER: database.user,
    BERTH_METADATA_POSTGRES_DATABASE: database.database,
  };
}

/**
 * A throwaway cluster for the enclosing `describe`: started before its
 * tests, stopped after them. Call `createDatabase()` inside tests.
 */
export function postgresForSuite(): Pick<TestPostgres, 'createDatabase'> {
  let cluster: TestPostgres | undefined;
  before(async () => {
    cluster = await startTestPostgres();
  });
  after(() => cluster?.close());
  return {
    createDatabase() {
      if (cluster === undefined) throw new Error('postgresForSuite: the cluster starts in a before hook; create databases inside tests');
      return cluster.createDatabase();
    },
  };
}
