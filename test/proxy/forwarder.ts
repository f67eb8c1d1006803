import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What a test may do to one request: answer it here, or hold back, cut off or corrupt the response. */
export interface ResponseHook {
  /** Answer without asking the target. */
  respond?: { status: number; headers?: Record<string, string>; body?: string };
  /** Send this many body bytes, then wait for `release` before sending the rest. */
  holdAfter?: number;
  release?: Promise<void>;
  /** Send this many body bytes, then destroy the connection. */
  cutAfter?: number;
  /** Flip the bits of the body byte at this offset. */
  corruptAt?: number;
  /** Headers added to the target's answer. */
  headers?: Record<string, string>;
}

/**
 * An HTTP forwarder in front of a registry: counts every request by
 * method and path, and can hold back or cut off chosen responses. Closing
 * it is an upstream outage (connections refused).
 */
export class Forwarder {
  readonly requests: string[] = [];
  hook: ((method: string, path: string, headers: IncomingHttpHeaders) => ResponseHook | undefined) | undefined;
  readonly #target: URL;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(target: string) {
    this.#target = new URL(target);
    this.#server = createServer((request, response) => this.#forward(request, response));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(target: string): Promise<Forwarder> {
    const forwarder = new Forwarder(target);
    await new Promise<void>((resolve) => forwarder.#server.listen(0, '127.0.0.1', resolve));
    return forwarder;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** How many requests matched `method` and a path (with its query) containing `fragment`. */
  count(method: string, fragment: string): number {
    return this.requests.filter((line) => line.startsWith(`${method} `) && line.includes(fragment)).length;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #forward(request: IncomingMessage, response: ServerResponse): void {
    const path = request.url ?? '/';
    this.requests.push(`${request.method} ${path}`);
    const hook = this.hook?.(request.method ?? 'GET', path, request.headers);
    if (hook?.respond !== undefined) {
      const { status, headers, body } = hook.respond;
      request.resume();
      response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(body ?? '');
      return;
    }
    const upstream = httpRequest(
      { host: this.#target.hostname, port: this.#target.port, method: request.method, path, headers: { ...request.headers, host: this.#target.host } },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...hook?.headers });
        if (hook === undefined) {
          answer.pipe(response);
          return;
        }
        void relay(answer, response, hook);
      },
    );
    upstream.on('error', () => response.destroy());
    request.pipe(upstream);
  }
}

async function relay(answer: IncomingMessage, response: ServerResponse, hook: ResponseHook): Promise<void> {
  let sent = 0;
  let held = false;
  for await (const chunk of answer) {
    let bytes = chunk as Buffer;
    if (hook.corruptAt !== undefined && hook.corruptAt >= sent && hook.corruptAt < sent + bytes.length) {
      bytes = Buffer.from(bytes);
      bytes[hook.corruptAt - sent] = (bytes[hook.corruptAt - sent] as number) ^ 0xff;
    }
    if (hook.cutAfter !== undefined && sent + bytes.length > hook.cutAfter) {
      response.write(bytes.subarray(0, hook.cutAfter - sent));
      response.destroy();
      answer.destroy();
      return;
    }
    if (!held && hook.holdAfter !== undefined && sent + bytes.length > hook.holdAfter) {
      const first = bytes.subarray(0, hook.holdAfter - sent);
      response.write(first);
      sent += first.length;
      bytes = bytes.subarray(first.length);
      held = true;
      await hook.release;
    }
    response.write(bytes);
    sent += bytes.length;
  }
  response.end();
}
