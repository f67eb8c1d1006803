import { parentPort } from 'node:worker_threads';
import { passwordMatches } from './htpasswd.ts';

/** One bcrypt comparison per message, off the thread that serves requests. */
parentPort?.on('message', (job: { id: number; password: string; hash: string | undefined }) => {
  parentPort?.postMessage({ id: job.id, matches: passwordMatches(job.password, job.hash) });
});
