// The worker side of passesInThreads: opens the registry's stores as `berth gc` does, runs one pass, reports.
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from './config/schema.ts';
import { lowerThreadPriority } from './gc/background-priority.ts';
import type { PassTask } from './passes-in-threads.ts';
import { createLogger, openRegistry } from './server.ts';

const { config, ...task } = workerData as { config: Config } & PassTask;
// The registry serves on the other threads of this process: the pass yields the CPU to them.
lowerThreadPriority();
// Other threads of the process write to the same stdout: whole lines, one write each.
const registry = await openRegistry(config, createLogger(config, 1, { shared: true }));
try {
  const report = task.task === 'gc' ? await registry.operations.collect() : await registry.operations.applyRetention({ dryRun: task.dryRun });
  parentPort?.postMessage({ report });
} catch (error) {
  parentPort?.postMessage({ error: error instanceof Error ? error.message : String(error) });
} finally {
  await registry.operations.stop();
  await registry.close();
}
