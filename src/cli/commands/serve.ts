import type { Command } from 'commander';
import { startServer } from '../../server.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';

/** `berth serve`: runs the registry until SIGTERM or SIGINT, then drains in-flight requests. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the registry')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:5000)')
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .action(async (options: CommonOptions & { listen?: string }) => {
      const config = await configFromOptions(options, { listen: options.listen });
      const server = await startServer(config);
      const { logger } = server.registry;
      logger.info({ address: server.address, dataDir: config.dataDir }, `Berth is listening on http://${server.address}`);
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping: finishing in-flight requests');
        const timer = setTimeout(() => {
          logger.error({ timeoutMs: config.server.shutdownTimeout }, 'in-flight requests did not finish in time; exiting');
          process.exit(1);
        }, config.server.shutdownTimeout);
        timer.unref();
        server.close().then(
          () => {
            logger.info({}, 'stopped');
            process.exit(0);
          },
          (error: unknown) => {
            logger.error({ err: error }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
