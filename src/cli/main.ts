import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config/load.ts';
import { registerCopy } from './commands/copy.ts';
import { registerDroplet } from './commands/droplet.ts';
import { registerGc } from './commands/gc.ts';
import { registerRetention } from './commands/retention.ts';
import { registerRootfs } from './commands/rootfs.ts';
import { registerServe } from './commands/serve.ts';
import { registerSync } from './commands/sync.ts';
import { registerUser } from './commands/user.ts';
import { registerUsage } from './commands/usage.ts';

/** Exit codes scripts can rely on. */
export const exitCodes = { ok: 0, failure: 1, usage: 2, config: 3 } as const;

export function buildProgram(): Command {
  const program = new Command('berth').description('Berth: an OCI container registry').version('0.1.0').exitOverride().showHelpAfterError();
  registerServe(program);
  registerDroplet(program);
  registerRootfs(program);
  registerCopy(program);
  registerSync(program);
  registerUser(program);
  registerGc(program);
  registerUsage(program);
  registerRetention(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
    } else if (error instanceof ConfigError) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exitCode = exitCodes.config;
    } else {
      process.stderr.write(`berth: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = exitCodes.failure;
    }
  }
}

if (import.meta.main) await main(process.argv);
