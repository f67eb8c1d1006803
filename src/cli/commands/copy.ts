import type { Command } from 'commander';
import { addTransferOptions, interruptSignal, transferOptions, type TransferFlags } from '../../copy/command-options.ts';
import { classifyFailure } from '../../copy/exit-codes.ts';
import { runCopy } from '../../copy/run.ts';

/** `berth copy SOURCE DESTINATION`: one image between any two transports (docs/copy.md). */
export function registerCopy(program: Command): void {
  addTransferOptions(
    program
      .command('copy')
      .description('copy an image between registries, OCI layouts (directory or S3) and archives')
      .argument('<source>', 'docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], s3://BUCKET/PREFIX[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:NAME:TAG]')
      .argument('<destination>', 'the same forms'),
  ).action(async (source: string, destination: string, flags: TransferFlags) => {
    const interrupt = interruptSignal();
    try {
      const options = transferOptions(flags, interrupt.signal);
      try {
        process.exitCode = await runCopy(source, destination, options);
      } finally {
        options.reporter.close();
      }
    } catch (error) {
      process.stderr.write(`berth copy: ${(error as Error).message}\n`);
      process.exitCode = classifyFailure(error).exitCode;
    } finally {
      interrupt.dispose();
    }
  });
}
