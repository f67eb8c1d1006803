import { randomUUID } from 'node:crypto';
import { BroadcastChannel } from 'node:worker_threads';

/**
 * The other workers of this `berth serve` (docs/deployment.md, "Workers"):
 * threads of one process serving one port. Worker 0, the leader, runs
 * what must run once (schedules, webhook delivery, the archive scanner,
 * the rootfs importer); the others only serve. Workers tell each other
 * things over named channels, and ask all of them a question with `gather`.
 */
export interface Peers {
  /** This worker's number; 0 is the leader. */
  readonly worker: number;
  /** How many workers serve (1: this one alone). */
  readonly count: number;
  readonly leader: boolean;
  /** A channel every worker opens by the same name (once: asking again gives the same one); a message reaches every worker but the sender. */
  channel<T>(name: string): PeerChannel<T>;
  /** Answers `gather(topic)` from other workers (one answerer per topic and worker). */
  answer<T>(topic: string, respond: () => Promise<T> | T): void;
  /** Every worker's answer to `topic`, this worker's own first; workers that do not answer within `timeoutMs` are left out. */
  gather<T>(topic: string, timeoutMs?: number): Promise<T[]>;
  /** The leader's answer to `topic`; undefined when it does not answer within `timeoutMs`. */
  askLeader<T>(topic: string, timeoutMs?: number): Promise<T | undefined>;
  /** Milliseconds since the leader's event loop was last heard from (0 on the leader itself). */
  leaderSilentMs(): number;
  close(): void;
}

export interface PeerChannel<T> {
  post(message: T): void;
  onMessage(listener: (message: T) => void): void;
}

/** What worker threads need to join the others: the shared name of their channels. */
export interface PeerIdentity {
  group: string;
  worker: number;
  count: number;
}

/** A new group's identity, for the leader (worker 0). */
export function newPeerGroup(count: number): PeerIdentity {
  return { group: randomUUID(), worker: 0, count };
}

/** One worker alone: channels lead nowhere, and gathering asks only itself. */
export function alone(): Peers {
  const answers = new Map<string, () => unknown>();
  return {
    worker: 0,
    count: 1,
    leader: true,
    channel: () => ({ post: () => undefined, onMessage: () => undefined }),
    answer: (topic, respond) => {
      answers.set(topic, respond);
    },
    gather: async <T>(topic: string) => {
      const respond = answers.get(topic);
      return respond === undefined ? [] : [(await respond()) as T];
    },
    askLeader: async <T>(topic: string) => {
      const respond = answers.get(topic);
      return respond === undefined ? undefined : ((await respond()) as T);
    },
    leaderSilentMs: () => 0,
    close: () => undefined,
  };
}

interface Question {
  id: string;
  topic: string;
}
interface Reply {
  id: string;
  worker: number;
  answer?: unknown;
  error?: string;
}

/** Peers over BroadcastChannels named after the group: threads of one process only. */
export class ThreadPeers implements Peers {
  readonly worker: number;
  readonly count: number;
  readonly leader: boolean;
  readonly #group: string;
  readonly #channels: BroadcastChannel[] = [];
  /** One channel per name in each worker: every part that asks for it shares it. */
  readonly #named = new Map<string, PeerChannel<unknown>>();
  readonly #answers = new Map<string, () => unknown>();
  readonly #waiting = new Map<string, (reply: Reply) => void>();
  readonly #questions: BroadcastChannel;
  readonly #replies: BroadcastChannel;
  readonly #heartbeat: NodeJS.Timeout | undefined;
  #leaderHeardAt = Date.now();

  /** `heartbeatMs`: how often the leader says it is alive. */
  constructor(identity: PeerIdentity, heartbeatMs = 1000) {
    this.worker = identity.worker;
    this.count = identity.count;
    this.leader = identity.worker === 0;
    this.#group = identity.group;
    const beats = this.#open('leader-alive');
    if (this.leader) {
      this.#heartbeat = setInterval(() => beats.postMessage(null), heartbeatMs);
      this.#heartbeat.unref();
    } else {
      beats.onmessage = () => {
        this.#leaderHeardAt = Date.now();
      };
    }
    this.#questions = this.#open('questions');
    this.#replies = this.#open('replies');
    this.#questions.onmessage = (event) => void this.#reply((event as { data: Question }).data);
    this.#replies.onmessage = (event) => {
      const reply = (event as { data: Reply }).data;
      this.#waiting.get(reply.id)?.(reply);
    };
  }

  channel<T>(name: string): PeerChannel<T> {
    const known = this.#named.get(name);
    if (known !== undefined) return known as PeerChannel<T>;
    const channel = this.#open(`channel:${name}`);
    const listeners: ((message: T) => void)[] = [];
    channel.onmessage = (event) => {
      for (const listener of listeners) listener((event as { data: T }).data);
    };
    const named: PeerChannel<T> = {
      post: (message) => channel.postMessage(message),
      onMessage: (listener) => {
        listeners.push(listener);
      },
    };
    this.#named.set(name, named as PeerChannel<unknown>);
    return named;
  }

  answer<T>(topic: string, respond: () => Promise<T> | T): void {
    this.#answers.set(topic, respond);
  }

  async gather<T>(topic: string, timeoutMs = 2000): Promise<T[]> {
    const respond = this.#answers.get(topic);
    const own = respond === undefined ? [] : [(await respond()) as T];
    if (this.count === 1) return own;
    const others = await this.#ask<T>(topic, timeoutMs, (answered) => answered.size >= this.count - 1);
    return [...own, ...[...others.entries()].sort(([a], [b]) => a - b).map(([, answer]) => answer)];
  }

  async askLeader<T>(topic: string, timeoutMs = 2000): Promise<T | undefined> {
    if (this.leader) {
      const respond = this.#answers.get(topic);
      return respond === undefined ? undefined : ((await respond()) as T);
    }
    return (await this.#ask<T>(topic, timeoutMs, (answered) => answered.has(0))).get(0);
  }

  /** Asks every other worker; their answers by worker, once `enough` says so or `timeoutMs` passed. */
  async #ask<T>(topic: string, timeoutMs: number, enough: (answered: ReadonlySet<number>) => boolean): Promise<Map<number, T>> {
    const id = randomUUID();
    const answers = new Map<number, T>();
    const answered = new Set<number>();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#waiting.set(id, (reply) => {
        answered.add(reply.worker);
        if (reply.error === undefined) answers.set(reply.worker, reply.answer as T);
        if (enough(answered)) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.#questions.postMessage({ id, topic } satisfies Question);
    });
    this.#waiting.delete(id);
    return answers;
  }

  leaderSilentMs(): number {
    return this.leader ? 0 : Date.now() - this.#leaderHeardAt;
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const channel of this.#channels) channel.close();
  }

  async #reply(question: Question): Promise<void> {
    const respond = this.#answers.get(question.topic);
    if (respond === undefined) return;
    try {
      this.#replies.postMessage({ id: question.id, worker: this.worker, answer: await respond() } satisfies Reply);
    } catch (error) {
      this.#replies.postMessage({ id: question.id, worker: this.worker, error: error instanceof Error ? error.message : String(error) } satisfies Reply);
    }
  }

  #open(name: string): BroadcastChannel {
    const channel = new BroadcastChannel(`berth:${this.#group}:${name}`);
    // Channels never keep a worker alive on their own.
    channel.unref();
    this.#channels.push(channel);
    return channel;
  }
}
