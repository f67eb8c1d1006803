import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  contentType: string;
  authorization: string | undefined;
  body: unknown;
}

/** A webhook endpoint that records what it is sent, and can be down (answering `status`) or gone (not listening). */
export class WebhookReceiver {
  readonly received: Received[] = [];
  /** What to answer; 204 when up. */
  status = 204;
  /** How long to take before answering (a request is recorded when it arrives). */
  delayMs = 0;
  #server: Server | undefined;
  #port = 0;
  #waiters: { count: number; resolve: () => void }[] = [];

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hook`;
  }

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (this.status < 300) {
          this.received.push({
            contentType: request.headers['content-type'] ?? '',
            authorization: request.headers.authorization,
            body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
          });
          this.#waiters = this.#waiters.filter((waiter) => {
            if (this.events().length < waiter.count) return true;
            waiter.resolve();
            return false;
          });
        }
        const status = this.status;
        if (this.delayMs === 0) response.writeHead(status).end();
        else setTimeout(() => response.writeHead(status).end(), this.delayMs);
      });
    });
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops listening (connections refused) until `start` again on the same port. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  /** Resolves once `count` events in all have been received. */
  async waitFor(count: number, timeoutMs = 20_000): Promise<void> {
    if (this.events().length >= count) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${this.events().length} of ${count} events`)), timeoutMs);
      this.#waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Every event received, flattening batches. */
  events(): Record<string, unknown>[] {
    return this.received.flatMap((item) => (Array.isArray(item.body) ? item.body : [item.body])) as Record<string, unknown>[];
  }
}
