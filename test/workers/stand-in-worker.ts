// A worker thread for the pool's supervision tests: reports ready, answers pings, then fails as told.
import { parentPort, workerData } from 'node:worker_threads';

const { config } = workerData as { config: { failure: 'hang' | 'throw' } };
parentPort?.on('message', (message: { type: string }) => {
  if (message.type === 'ping') parentPort?.postMessage({ type: 'pong' });
  if (message.type === 'stop') process.exit(0);
});
parentPort?.postMessage({ type: 'ready' });
setTimeout(() => {
  if (config.failure === 'throw') throw new Error('the stand-in failed');
  // A blocked event loop: no more pongs.
  for (;;) {
    // spin
  }
}, 200);
