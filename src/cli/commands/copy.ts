import type { Command } from 'commander';
import { addTransferOptions, runTransferCommand, type TransferFlags } from '../../copy/command-options.ts';

/** `berth copy SOURCE DESTINATION`: one image between any two transports (docs/copy.md). */
export function registerCopy(program: Command): void {
  addTransferOptions(
    program
      .command('copy')
      .description('copy an image between registries, OCI layouts (directory or S3), archives and the local Docker Engine')
      .argument(
        '<source>',
        'docker://HOST/REPO[:TAG|@DIGEST], oci:DIR[:REF], s3://BUCKET/PREFIX[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME:TAG] or docker-daemon:NAME[:TAG]',
      )
      .argument('<destination>', 'the same forms'),
  ).action((source: string, destination: string, flags: TransferFlags) =>
    runTransferCommand('copy', flags, async (options) => (await import('../../copy/run.ts')).runCopy(source, destination, options)),
  );
}
