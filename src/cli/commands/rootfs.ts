import type { Command } from 'commander';
import type { Config } from '../../config/schema.ts';
import { parseDigest } from '../../oci/digest.ts';
import type { RootfsBase } from '../../sources/droplet/rootfs.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';

/** `berth rootfs import FILE`, `rollback [DIGEST]`, `list`: the Cloud Foundry rootfs droplet images are composed on. */
export function registerRootfs(program: Command): void {
  const rootfs = program.command('rootfs').description('the Cloud Foundry rootfs droplet images are composed on');
  rootfs
    .command('import')
    .description('import a cflinuxfs tarball (.tar or .tar.gz); every droplet image is composed on it from now on')
    .argument('<file>', 'the rootfs tarball')
    .option('--prefix <prefix>', 'the droplet repository prefix (needed when several are configured)')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (file: string, options: CommonOptions & { prefix?: string }) => {
      await withRootfs(options, async (rootfs, prefix) => {
        const record = await rootfs.import(file);
        process.stdout.write(`${record.digest}\n`);
        process.stderr.write(
          record.latest
            ? `rootfs ${file} imported for "${prefix}": layer ${record.digest} (diff_id ${record.diffId}, ${record.size} bytes)\n`
            : `rootfs ${file} was imported for "${prefix}" before (layer ${record.digest}); the latest rootfs does not go back: use berth rootfs rollback to do that\n`,
        );
      });
    });
  rootfs
    .command('rollback')
    .description('make an earlier rootfs the base of every droplet image again (the one before the current one, or DIGEST, or FILE)')
    .argument('[digest]', 'the rootfs layer digest to go back to (berth rootfs list shows them)')
    .option('--file <file>', 'import this rootfs tarball and make it the latest even if it was imported before')
    .option('--prefix <prefix>', 'the droplet repository prefix (needed when several are configured)')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (digest: string | undefined, options: CommonOptions & { prefix?: string; file?: string }) => {
      await withRootfs(options, async (rootfs, prefix) => {
        const target = options.file === undefined ? (digest === undefined ? undefined : parseDigest(digest)) : (await rootfs.import(options.file)).digest;
        const record = await rootfs.rollback(target);
        process.stdout.write(`${record.digest}\n`);
        process.stderr.write(`rootfs of "${prefix}" rolled back to ${record.digest}: droplet images are composed on it from now on\n`);
      });
    });
  rootfs
    .command('list')
    .description('the rootfs history of a droplet repository prefix, newest import first')
    .option('--prefix <prefix>', 'the droplet repository prefix (needed when several are configured)')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (options: CommonOptions & { prefix?: string }) => {
      await withRootfs(options, async (rootfs) => {
        for (const entry of await rootfs.history()) {
          const state = entry.expiresAt === undefined ? 'latest' : `replaced, served until ${entry.expiresAt.toISOString()}`;
          process.stdout.write(`${entry.digest}\t${entry.importedAt.toISOString()}\t${state}\t${entry.origin}\n`);
        }
      });
    });
}

async function withRootfs(options: CommonOptions & { prefix?: string }, work: (rootfs: RootfsBase, prefix: string) => Promise<void>): Promise<void> {
  const config = await configFromOptions(options, { 'log.level': 'warn' });
  const prefix = dropletPrefix(config, options.prefix);
  const [{ createLogger, openRegistry }, { DropletSource }] = await Promise.all([import('../../server.ts'), import('../../sources/droplet/droplet-source.ts')]);
  // Logs go to stderr: stdout is what the command prints (a digest, a list).
  const registry = await openRegistry(config, createLogger(config, 2));
  try {
    // The kind's own source, not the pull-recording wrapper the router holds.
    const source = registry.sources.find((route) => route.kind === 'droplet' && route.prefix === prefix)?.source;
    if (!(source instanceof DropletSource)) throw new Error(`no droplet repository serves the prefix "${prefix}"`);
    await work(source.rootfs, prefix);
  } finally {
    await registry.close();
  }
}

function dropletPrefix(config: Config, wanted: string | undefined): string {
  const prefixes = config.repositories.filter((entry) => entry.kind === 'droplet').map((entry) => entry.prefix);
  if (wanted !== undefined) {
    if (!prefixes.includes(wanted)) throw new Error(`no droplet repository has the prefix "${wanted}" (configured: ${prefixes.map((p) => `"${p}"`).join(', ') || 'none'})`);
    return wanted;
  }
  const [only, ...others] = prefixes;
  if (only === undefined) throw new Error('no droplet repository is configured (repositories: - kind: droplet)');
  if (others.length > 0) throw new Error(`several droplet repositories are configured; choose one with --prefix (${prefixes.map((p) => `"${p}"`).join(', ')})`);
  return only;
}
