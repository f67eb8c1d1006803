import type { Config } from '../config/schema.ts';
import { alone, newPeerGroup, ThreadPeers } from '../io/peers.ts';
import type { Logger } from '../log.ts';
import { createLogger, startServer } from '../server.ts';
import { WorkerPool } from './worker-pool.ts';

/** `berth serve` running: every worker listening, and how to stop them all. */
export interface ServingWorkers {
  /** The address bound, as HOST:PORT. */
  address: string;
  workers: number;
  https: boolean;
  caCert?: string;
  logger: Logger;
  /** Stops accepting on every worker, finishes requests in flight everywhere, closes the stores. */
  close(): Promise<void>;
}

/**
 * Serves with `count` workers: this thread is worker 0, the leader (it
 * binds the port, creates what must exist once, such as the development
 * certificate and the token key, and runs the schedules); the others are
 * threads that join it on the same port (SO_REUSEPORT, so the kernel
 * spreads connections) once it listens.
 */
export async function serveWithWorkers(config: Config, count: number): Promise<ServingWorkers> {
  const group = newPeerGroup(count);
  const logger = createLogger(config, 1, { shared: count > 1 });
  const peers = count > 1 ? new ThreadPeers(group) : alone();
  const leader = await startServer(config, count > 1 ? logger.child({ worker: 0 }) : logger, peers);
  let pool: WorkerPool | undefined;
  if (count > 1) {
    try {
      pool = await WorkerPool.start({ config: { ...config, listen: leader.address }, group, logger });
    } catch (error) {
      await leader.close();
      throw error;
    }
  }
  return {
    address: leader.address,
    workers: count,
    https: leader.security.https,
    ...(leader.security.caCert === undefined ? {} : { caCert: leader.security.caCert }),
    logger,
    async close() {
      await Promise.all([pool?.stop(), leader.close()]);
      peers.close();
    },
  };
}
