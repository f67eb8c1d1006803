import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from '../helpers/tmp.ts';
import { run } from '../helpers/tools.ts';

export interface PodmanService {
  /** DOCKER_HOST for its Docker-compatible API. */
  host: string;
  /** The podman CLI on the same storage. */
  podman(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** `podman system service` with storage of its own (vfs, temp root and runroot) on a socket in a temp dir. */
export async function startPodmanService(): Promise<PodmanService> {
  const directory = await tempDir('berth-podman');
  const storage = ['--root', join(directory.path, 'root'), '--runroot', join(directory.path, 'run'), '--storage-driver', 'vfs'];
  const socket = join(directory.path, 'podman.sock');
  const child = spawn('podman', [...storage, 'system', 'service', '--time=0', `unix://${socket}`], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    await directory.remove();
  };
  for (let attempt = 0; !(await ping(socket)); attempt += 1) {
    if (attempt > 150 || child.exitCode !== null) {
      await stop();
      throw new Error('podman system service did not answer on its socket');
    }
    await sleep(100);
  }
  return { host: `unix://${socket}`, podman: (args) => run('podman', [...storage, ...args]), stop };
}

function ping(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: '/_ping' }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}
