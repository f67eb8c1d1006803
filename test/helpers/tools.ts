import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a program and returns its stdout; a non-zero exit rejects with stderr in the message. */
export async function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, [...args], { maxBuffer: 64 * 1024 * 1024, ...options });
    return stdout;
  } catch (error) {
    const failure = error as Error & { stderr?: string; stdout?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${failure.message}\n${failure.stderr ?? ''}`, { cause: error });
  }
}

/** Whether a program is on PATH (for tests that need Debian packages). */
export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** A reason to skip when a required program is missing; `.ci/run` installs all of them. */
export function missingCommands(...commands: string[]): string | false {
  const missing = commands.filter((command) => !hasCommand(command));
  return missing.length === 0 ? false : `needs ${missing.join(', ')} (installed by .ci/run)`;
}
