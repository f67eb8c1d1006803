import type { Command } from 'commander';
import type { Config } from '../../config/schema.ts';
import { isRepositoryName } from '../../oci/names.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';

/** `berth rootfs import FILE`: a new Cloud Foundry rootfs becomes the base of every droplet image. */
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
      const config = await configFromOptions(options, { 'log.level': 'warn' });
      const prefix = dropletPrefix(config, options.prefix);
      const [{ createLogger, openRegistry }, { DropletSource }] = await Promise.all([import('../../server.ts'), import('../../sources/droplet/droplet-source.ts')]);
      const registry = await openRegistry(config, createLogger(config, 2));
      try {
        const probe = `${prefix}rootfs-import`;
        const source = isRepositoryName(probe) ? registry.router.sourceFor(probe) : undefined;
        if (!(source instanceof DropletSource)) throw new Error(`no droplet repository serves the prefix "${prefix}"`);
        const record = await source.rootfs.import(file);
        process.stdout.write(`${record.digest}\n`);
        process.stderr.write(`rootfs ${file} imported for "${prefix}": layer ${record.digest} (diff_id ${record.diffId}, ${record.size} bytes)\n`);
      } finally {
        await registry.close();
      }
    });
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
