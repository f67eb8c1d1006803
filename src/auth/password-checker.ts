import { Worker } from 'node:worker_threads';
import { RegistryError } from '../errors/registry-error.ts';

interface Job {
  id: number;
  password: string;
  hash: string | undefined;
  resolve(matches: boolean): void;
  reject(error: Error): void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
}

/**
 * bcrypt comparisons in worker threads. A comparison costs tens of
 * milliseconds of CPU; on the serving thread a flood of wrong passwords
 * would stall every other request. Here they queue for the workers while
 * requests with cached or token credentials go on, and past `queue`
 * waiting checks new ones are refused at once with 429.
 */
export class PasswordChecker {
  readonly #workers: number;
  readonly #queueLimit: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  #nextId = 0;
  #closed = false;

  constructor(options: { workers: number; queue: number }) {
    this.#workers = options.workers;
    this.#queueLimit = options.queue;
  }

  matches(password: string, hash: string | undefined): Promise<boolean> {
    if (this.#closed) return Promise.reject(new Error('the password checker is closed'));
    if (this.#queue.length >= this.#queueLimit) {
      return Promise.reject(new RegistryError('TOOMANYREQUESTS', 'too many sign-ins are being checked at once; retry in a moment', { headers: { 'retry-after': '1' } }));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: (this.#nextId += 1), password, hash, resolve, reject });
      this.#dispatch();
    });
  }

  /** Stops the workers; checks still waiting fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#queue.splice(0)) job.reject(new Error('the password checker is closed'));
    await Promise.all(this.#slots.splice(0).map((slot) => slot.worker.terminate()));
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const slot = this.#slots.find((candidate) => candidate.job === undefined) ?? this.#spawn();
      if (slot === undefined) return;
      const job = this.#queue.shift() as Job;
      slot.job = job;
      slot.worker.postMessage({ id: job.id, password: job.password, hash: job.hash });
    }
  }

  /** A new worker, while there are fewer than allowed; started on first need, so servers without users start none. */
  #spawn(): Slot | undefined {
    if (this.#slots.length >= this.#workers) return undefined;
    const worker = new Worker(new URL('./password-worker.ts', import.meta.url));
    // Idle workers must not keep a stopping process alive.
    worker.unref();
    const slot: Slot = { worker, job: undefined };
    worker.on('message', (message: { id: number; matches: boolean }) => {
      const job = slot.job;
      slot.job = undefined;
      if (job !== undefined && job.id === message.id) job.resolve(message.matches);
      this.#dispatch();
    });
    const lose = (error: Error) => {
      const index = this.#slots.indexOf(slot);
      if (index >= 0) this.#slots.splice(index, 1);
      slot.job?.reject(error);
      slot.job = undefined;
      if (!this.#closed) this.#dispatch();
    };
    worker.on('error', lose);
    worker.on('exit', (code) => lose(new Error(`password worker exited with code ${code}`)));
    this.#slots.push(slot);
    return slot;
  }
}
