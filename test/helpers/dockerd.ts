import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startContainerd } from './containerd.ts';
import { tempDir } from './tmp.ts';
import { missingCommands, needsRoot } from './tools.ts';

export interface DockerEngine {
  /** The engine's socket as a DOCKER_HOST value (`unix:///…/docker.sock`). */
  host: string;
  /** Runs the docker CLI against this engine (its own DOCKER_CONFIG); resolves to stdout, rejects with stderr. */
  docker(args: string[], opts?: { input?: string }): Promise<string>;
  /** Stops dockerd and its containerd and removes their directories. */
  stop(): Promise<void>;
}

export interface DockerEngineOptions {
  /** `registry-mirrors` (for Docker Hub pulls), such as `http://127.0.0.1:PORT`. */
  mirrors?: string[];
  /** `insecure-registries` beyond loopback (which dockerd already treats as insecure). */
  insecureRegistries?: string[];
}

/**
 * Debian's CLI (package docker.io) is the one built with its dockerd; a
 * different docker elsewhere on PATH may speak another API version.
 */
const dockerCli = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

/** Why Docker Engine tests cannot run here, or false: they need docker.io's binaries and root. */
export function dockerUnavailable(): string | false {
  return missingCommands('dockerd', 'docker', 'containerd', 'ctr', 'runc') || needsRoot('to run dockerd');
}

/**
 * A Docker Engine of its own: a containerd with its own root, state and
 * socket, and a dockerd on vfs with no bridge and no iptables rules (so it
 * touches nothing of the host's networking), every path in a temp dir.
 * `docker run --network none` works.
 */
export async function startDockerEngine(options: DockerEngineOptions = {}): Promise<DockerEngine> {
  const directory = await tempDir('berth-dockerd');
  const containerd = await startContainerd(join(directory.path, 'containerd'));
  const socket = join(directory.path, 'docker.sock');
  const configFile = join(directory.path, 'daemon.json');
  const clientConfig = join(directory.path, 'client');
  await mkdir(clientConfig);
  await writeFile(configFile, JSON.stringify({ 'registry-mirrors': options.mirrors ?? [], 'insecure-registries': options.insecureRegistries ?? [], 'shutdown-timeout': 2 }));
  const logPath = join(directory.path, 'dockerd.log');
  const log = await open(logPath, 'w');
  const child = spawn(
    'dockerd',
    [
      '--storage-driver=vfs',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--data-root',
      join(directory.path, 'data'),
      '--exec-root',
      join(directory.path, 'exec'),
      '--pidfile',
      join(directory.path, 'dockerd.pid'),
      '-H',
      `unix://${socket}`,
      '--containerd',
      containerd.socket,
      '--config-file',
      configFile,
    ],
    { stdio: ['ignore', log.fd, log.fd] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const host = `unix://${socket}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await log.close();
    await containerd.stop();
    await directory.remove();
  };
  try {
    await waitForPing(socket, () => child.exitCode !== null);
  } catch (error) {
    const tail = (await readFile(logPath, 'utf8').catch(() => '')).split('\n').slice(-20).join('\n');
    await stop();
    throw new Error(`dockerd did not start: ${(error as Error).message}\n${tail}`, { cause: error });
  }
  return {
    host,
    docker: (args, opts = {}) => runCli(args, { ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: clientConfig }, opts.input),
    stop,
  };
}

/** Waits until the engine answers `GET /_ping` on its socket (about 2 s on these machines). */
async function waitForPing(socket: string, gone: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt += 1) {
    if (gone()) throw new Error('dockerd exited');
    if (await ping(socket)) return;
    await sleep(100);
  }
  throw new Error('no answer on its socket after 30 s');
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping', method: 'GET' }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** The docker CLI with `input` on stdin (for `login --password-stdin`); stdout, or a rejection carrying stderr. */
function runCli(args: string[], env: NodeJS.ProcessEnv, input: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(dockerCli, args, { env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString());
      else reject(new Error(`docker ${args.join(' ')} exited ${code}: ${Buffer.concat(stderr).toString().trim()}`));
    });
    // A command that exits without reading its input is judged by its exit code, not by EPIPE.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
  });
}
