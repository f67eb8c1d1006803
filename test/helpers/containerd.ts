import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingCommands, needsRoot, run } from './tools.ts';

/** Why containerd tests cannot run here, or false: they need its binaries and root. */
export function containerdUnavailable(): string | false {
  return missingCommands('containerd', 'ctr') || needsRoot('to run containerd');
}

/** A containerd of its own (no CRI, temp root and state), for `ctr`; root only. */
export async function startContainerd(directory: string): Promise<{ socket: string; stop(): Promise<void> }> {
  await mkdir(directory, { recursive: true });
  const socket = join(directory, 'containerd.sock');
  const config = join(directory, 'config.toml');
  await writeFile(
    config,
    [
      `version = 2`,
      `root = "${join(directory, 'root')}"`,
      `state = "${join(directory, 'state')}"`,
      `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      `[grpc]`,
      `  address = "${socket}"`,
    ].join('\n'),
  );
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  for (let attempt = 0; ; attempt += 1) {
    try {
      await run('ctr', ['--address', socket, 'version']);
      break;
    } catch (error) {
      if (attempt > 100 || child.exitCode !== null) {
        child.kill();
        throw error;
      }
      await sleep(100);
    }
  }
  return {
    socket,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
