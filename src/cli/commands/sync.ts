import type { Command } from 'commander';
import { addTransferOptions, runTransferCommand, type TransferFlags } from '../../copy/command-options.ts';
import { LocationError } from '../../copy/location.ts';

/** `berth sync SOURCE DESTINATION`: every tag (or the matching ones) of a repository (docs/copy.md). */
export function registerSync(program: Command): void {
  addTransferOptions(
    program
      .command('sync')
      .description('copy every tag of a repository (or those matching --tags) to another transport, skipping what is current')
      .argument(
        '<source>',
        'a repository or layout without a tag: docker://HOST/REPO, oci:DIR, s3://BUCKET/PREFIX, oci-archive:FILE, docker-archive:FILE, docker-daemon:NAME; or a whole registry: docker://HOST',
      )
      .argument('<destination>', 'the same forms (for a whole registry: docker://HOST[/PREFIX], oci:DIR, s3://BUCKET/PREFIX)')
      .option('--tags <regex>', 'only tags matching this regular expression (the whole tag)')
      .option('--include <glob>', 'a whole registry: only repositories matching this glob (team/**); repeatable', collect, [])
      .option('--exclude <glob>', 'a whole registry: skip repositories matching this glob; repeatable', collect, []),
  ).action((source: string, destination: string, flags: TransferFlags & { tags?: string; include?: string[]; exclude?: string[] }) =>
    runTransferCommand('sync', flags, async (options) =>
      (await import('../../copy/run.ts')).runSync(source, destination, {
        ...options,
        ...tagFilter(flags.tags),
        ...(flags.include === undefined ? {} : { include: flags.include }),
        ...(flags.exclude === undefined ? {} : { exclude: flags.exclude }),
      }),
    ),
  );
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function tagFilter(pattern: string | undefined): { tags?: RegExp } {
  if (pattern === undefined) return {};
  try {
    return { tags: new RegExp(`^(?:${pattern})$`) };
  } catch (cause) {
    throw new LocationError(`--tags: ${(cause as Error).message}`);
  }
}
