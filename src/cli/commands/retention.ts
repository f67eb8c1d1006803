import type { Command } from 'commander';
import { formatBytes } from '../../policy/quotas.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';
import { lowerProcessPriority } from '../../gc/background-priority.ts';

/** `berth retention [--dry-run]`: applies the retention policies once, or lists what they would delete. */
export function registerRetention(program: Command): void {
  program
    .command('retention')
    .description('apply the retention policies once (tags and manifests; garbage collection then frees the space)')
    .option('--dry-run', 'list what the policies would delete, deleting nothing')
    .option('--json', 'print the report as JSON')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (options: CommonOptions & { dryRun?: boolean; json?: boolean }) => {
      const config = await configFromOptions(options, { 'log.level': 'warn' });
      // A pass beside a serving registry yields the CPU to it (the pass's duty paces it besides).
      lowerProcessPriority();
      // Loaded when the command runs, so that `berth --help` and other commands stay quick.
      const { createLogger, openRegistry } = await import('../../server.ts');
      const registry = await openRegistry(config, createLogger(config, 2));
      try {
        if (!registry.operations.retention.configured) throw new Error('no retention policies are configured (retention.policies in the configuration)');
        const report = await registry.operations.applyRetention({ dryRun: options.dryRun === true });
        if (report === undefined) throw new Error('the retention policies are being applied elsewhere (berth serve or another replica); try again later');
        if (options.json === true) {
          process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return;
        }
        const verb = report.dryRun ? 'would delete' : 'deleted';
        const lines = [
          ...report.tags.map((tag) => `${verb} tag ${tag.repository}:${tag.tag} (${tag.digest})`),
          ...report.manifests.map((manifest) => `${verb} manifest ${manifest.repository}@${manifest.digest}`),
          `${report.repositories} repositories checked: ${verb} ${report.tags.length} tags and ${report.manifests.length} manifests (${formatBytes(
            report.manifests.reduce((total, manifest) => total + manifest.size, 0),
          )} of manifests; their layers go at the next garbage collection)`,
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      } finally {
        await registry.operations.stop();
        await registry.close();
      }
    });
}
