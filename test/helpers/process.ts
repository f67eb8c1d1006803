import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const berthMain = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface BerthProcess {
  child: ChildProcess;
  /** Everything written to stdout so far, line by line. */
  lines: string[];
  stderr(): string;
  /** Resolves with the first stdout line matching `pattern`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** Runs `berth <args>` under this Node (24, with type stripping; or `main`, a bundle's entry), collecting its output. */
export function spawnBerth(args: readonly string[], env: NodeJS.ProcessEnv = {}, main = berthMain): BerthProcess {
  const child = spawn(process.execPath, [main, ...args], {
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let errors = '';
  let buffered = '';
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const line of parts) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    errors += chunk;
  });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return {
    child,
    lines,
    stderr: () => errors,
    waitFor(pattern, timeoutMs = 20_000) {
      const found = lines.find((line) => pattern.test(line));
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} in ${timeoutMs} ms; stderr: ${errors}`)), timeoutMs);
        waiters.push({
          pattern,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(() => reject(new Error(`berth exited before printing ${pattern}; stderr: ${errors}`)));
      });
    },
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Runs `berth ARGS` to its end with `input` on standard input. */
export function runBerth(args: readonly string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [berthMain, ...args], { env: { PATH: process.env['PATH'], HOME: process.env['HOME'], ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** Starts `berth serve` on a free port and resolves with its URL once it listens. */
export async function startBerthServer(args: readonly string[], env: NodeJS.ProcessEnv = {}, main = berthMain): Promise<BerthProcess & { url: string }> {
  const berth = spawnBerth(['serve', '--listen', '127.0.0.1:0', ...args], { BERTH_LOG_FORMAT: 'json', ...env }, main);
  try {
    const line = await berth.waitFor(/Berth is listening/);
    const address = (JSON.parse(line) as { address: string }).address;
    return Object.assign(berth, { url: `http://${address}` });
  } catch (error) {
    await berth.stop();
    throw error;
  }
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
