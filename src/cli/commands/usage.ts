import type { Command } from 'commander';
import { formatBytes } from '../../policy/quotas.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';

/** `berth usage [--repositories GLOB…]`: quotas and what repositories hold, as `GET /berth/usage` reports them. */
export function registerUsage(program: Command): void {
  program
    .command('usage')
    .description('show storage used per quota, and by the repositories matching globs')
    .option('--repositories <glob...>', 'also report these repositories together (such as "team/**")')
    .option('--json', 'print the report as JSON (what GET /berth/usage answers)')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (options: CommonOptions & { repositories?: string[]; json?: boolean }) => {
      const config = await configFromOptions(options, { 'log.level': 'warn' });
      // Loaded when the command runs, so that `berth --help` and other commands stay quick.
      const { createLogger, openRegistry } = await import('../../server.ts');
      const registry = await openRegistry(config, createLogger(config, 2));
      try {
        const report = await registry.operations.usage(options.repositories ?? []);
        if (options.json === true) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const lines: string[] = [];
        if (report.quotas.length === 0) lines.push('no quotas are configured (quotas: in the configuration)');
        for (const quota of report.quotas) {
          const bytes = quota.maxBytes === undefined ? formatBytes(quota.usedBytes) : `${formatBytes(quota.usedBytes)} of ${formatBytes(quota.maxBytes)}`;
          const count = quota.maxRepositories === undefined ? `${quota.usedRepositories}` : `${quota.usedRepositories} of ${quota.maxRepositories}`;
          lines.push(`quota ${quota.name} (${quota.repositories.join(', ')}): ${bytes}, ${count} repositories`);
        }
        for (const cache of report.caches ?? []) {
          lines.push(`cache budget ${cache.name === 'all' ? 'of all caches' : cache.name}: ${formatBytes(cache.usedBytes)} of ${formatBytes(cache.maxBytes)}`);
        }
        if (report.selection !== undefined) {
          lines.push(`${report.selection.repositories.join(', ')}: ${formatBytes(report.selection.usedBytes)} in ${report.selection.usedRepositories} repositories`);
        }
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await registry.operations.stop();
        await registry.close();
      }
    });
}
