import type { Command } from 'commander';
import type { GcReport } from '../../gc/collector.ts';
import { formatBytes } from '../../policy/quotas.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';
import { lowerProcessPriority } from '../../gc/background-priority.ts';

interface GcOptions extends CommonOptions {
  dryRun?: boolean;
  json?: boolean;
  verbose?: boolean;
}

/** `berth gc [--dry-run]`: one garbage collection pass over the configured stores, next to a running registry. */
export function registerGc(program: Command): void {
  program
    .command('gc')
    .description('run one garbage collection pass (safe while the registry serves) and report what it freed')
    .option('--dry-run', 'count what a pass would delete, deleting nothing')
    .option('--json', 'print the report as JSON')
    .option('--verbose', 'log each batch')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (options: GcOptions) => {
      const config = await configFromOptions(options, { 'log.level': options.verbose === true ? 'debug' : 'warn' });
      // A pass beside a serving registry yields the CPU to it (the pass's duty paces it besides).
      lowerProcessPriority();
      // Loaded when the command runs, so that `berth --help` and other commands stay quick.
      const { createLogger, openRegistry } = await import('../../server.ts');
      const registry = await openRegistry(config, createLogger(config, 2));
      try {
        const report = await registry.operations.collect({ dryRun: options.dryRun === true });
        if (report === undefined) {
          throw new Error('another garbage collection pass is running (berth serve or berth gc, here or on another replica); try again when it has finished');
        }
        process.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${describeReport(report)}\n`);
      } finally {
        await registry.operations.stop();
        await registry.close();
      }
    });
}

export function describeReport(report: GcReport): string {
  const verb = report.dryRun ? 'would free' : 'freed';
  const lines = [
    `garbage collection ${verb} ${formatBytes(report.bytesFreed)} in ${(report.durationMs / 1000).toFixed(1)} s (everything older than ${report.cutoff.toISOString()} was eligible)`,
    `  blobs deleted:            ${report.blobsDeleted}`,
    `  orphaned blob files:      ${report.orphansDeleted}`,
    `  unreferenced layer links: ${report.linksRemoved}`,
    `  unreachable manifests:    ${report.manifestsDeleted}`,
    `  expired uploads:          ${report.uploads.sessions} sessions, ${report.uploads.leftovers} leftovers, ${report.uploads.multipart} multipart`,
  ];
  if (report.tombstonesFinished > 0) lines.push(`  finished from an interrupted pass: ${report.tombstonesFinished}`);
  if (report.dryRun) lines.push('  (dry run: nothing was deleted)');
  return lines.join('\n');
}
