import { flushCompileCache } from 'node:module';
import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { hostPort } from '../../config/units.ts';
import { configFromOptions, schemaParser, type CommonOptions } from '../options.ts';

/** `berth serve`: runs the registry until SIGTERM or SIGINT, then drains in-flight requests. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the registry')
    .option('--listen <host:port>', 'address to listen on (default 127.0.0.1:5000)', schemaParser(hostPort))
    .option('--data <dir>', 'data directory (default ./data)')
    .option('--config <file>', 'YAML configuration file')
    .option('--workers <n>', 'worker threads serving the port (default: the CPUs this process may use)', positiveInteger)
    .option('--tls <mode>', '"self-signed": HTTPS with a generated development certificate (see docs/auth.md)', tlsMode)
    .option('--tls-host <name>', 'a host name or IP address the self-signed certificate covers (repeatable)', collect, [])
    .action(async (options: CommonOptions & { listen?: string; workers?: number; tls?: 'self-signed'; tlsHost: string[] }) => {
      const config = await configFromOptions(options, {
        listen: options.listen,
        ...(options.workers === undefined ? {} : { 'server.workers': options.workers }),
        ...(options.tls === undefined ? {} : { 'tls.selfSigned': true }),
        ...(options.tlsHost.length === 0 ? {} : { 'tls.hosts': options.tlsHost }),
      });
      // Loaded when the command runs, so that `berth --help` and other commands stay quick.
      const [{ serveWithWorkers }, { collectStartUpGarbage, exposeCollector }] = await Promise.all([import('../../workers/serve.ts'), import('../../workers/start-up-garbage.ts')]);
      exposeCollector();
      const server = await serveWithWorkers(config, config.server.workers ?? availableParallelism());
      const { logger } = server;
      // Before anything says Berth is listening: a process manager may signal as soon as it reads that.
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
      const scheme = server.https ? 'https' : 'http';
      logger.info({ address: server.address, dataDir: config.dataDir, workers: server.workers }, `Berth is listening on ${scheme}://${server.address}`);
      // With NODE_COMPILE_CACHE set (the container image sets it), what start-up compiled is written now, not only at exit.
      flushCompileCache();
      collectStartUpGarbage();
      if (server.caCert !== undefined) {
        // Clients cannot name a wildcard address; show the local name instead.
        const shown = server.address.replace(/^(0\.0\.0\.0|\[::\]):/, 'localhost:');
        const { trustInstructions } = await import('../../tls/self-signed.ts');
        process.stderr.write(`\n${trustInstructions(server.caCert, [shown])}\n\n`);
      }
    });
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 256) throw new InvalidArgumentError('a whole number from 1 to 256');
  return number;
}

function tlsMode(value: string): 'self-signed' {
  if (value !== 'self-signed') throw new InvalidArgumentError('the only mode is "self-signed"; for your own certificate set tls.cert and tls.key');
  return value;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
