// One worker of `berth serve` beside the leader: opens the stores, serves the shared port, stops when told.
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from '../config/schema.ts';
import { ThreadPeers, type PeerIdentity } from '../io/peers.ts';
import { createLogger, startServer } from '../server.ts';
import { collectStartUpGarbage } from './start-up-garbage.ts';
import type { ToLeader, ToWorker } from './worker-pool.ts';

const { config, identity } = workerData as { config: Config; identity: PeerIdentity };
const logger = createLogger(config, 1, { shared: true }).child({ worker: identity.worker });
const peers = new ThreadPeers(identity);
const tell = (message: ToLeader) => parentPort?.postMessage(message);

try {
  const server = await startServer(config, logger, peers);
  parentPort?.on('message', (message: ToWorker) => {
    // Answered from this thread's event loop: a blocked loop does not answer, and the leader ends it.
    if (message.type === 'ping') tell({ type: 'pong' });
    if (message.type !== 'stop') return;
    server.close().then(
      () => {
        peers.close();
        tell({ type: 'stopped' });
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'error while stopping');
        process.exit(1);
      },
    );
  });
  tell({ type: 'ready' });
  collectStartUpGarbage();
} catch (error) {
  tell({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
