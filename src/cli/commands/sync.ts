import type { Command } from 'commander';
import { addTransferOptions, interruptSignal, transferOptions, type TransferFlags } from '../../copy/command-options.ts';
import { classifyFailure } from '../../copy/exit-codes.ts';
import { LocationError } from '../../copy/location.ts';
import { runSync } from '../../copy/run.ts';

/** `berth sync SOURCE DESTINATION`: every tag (or the matching ones) of a repository (docs/copy.md). */
export function registerSync(program: Command): void {
  addTransferOptions(
    program
      .command('sync')
      .description('copy every tag of a repository (or those matching --tags) to another transport, skipping what is current')
      .argument('<source>', 'a repository or layout without a tag: docker://HOST/REPO, oci:DIR, s3://BUCKET/PREFIX, oci-archive:FILE, docker-archive:FILE')
      .argument('<destination>', 'the same forms')
      .option('--tags <regex>', 'only tags matching this regular expression (the whole tag)'),
  ).action(async (source: string, destination: string, flags: TransferFlags & { tags?: string }) => {
    const interrupt = interruptSignal();
    try {
      const options = transferOptions(flags, interrupt.signal);
      let tags: RegExp | undefined;
      try {
        tags = flags.tags === undefined ? undefined : new RegExp(`^(?:${flags.tags})$`);
      } catch (cause) {
        throw new LocationError(`--tags: ${(cause as Error).message}`);
      }
      try {
        process.exitCode = await runSync(source, destination, { ...options, ...(tags === undefined ? {} : { tags }) });
      } finally {
        options.reporter.close();
      }
    } catch (error) {
      process.stderr.write(`berth sync: ${(error as Error).message}\n`);
      process.exitCode = classifyFailure(error).exitCode;
    } finally {
      interrupt.dispose();
    }
  });
}
