import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A stand-in for Docker Hub's rate limiting in front of a registry: every
 * manifest GET counts against `limit` (HEADs and blobs do not, as on Docker
 * Hub); every answer carries `ratelimit-limit: L;w=21600` and
 * `ratelimit-remaining: R;w=21600`; once the limit is used up, manifest
 * GETs are answered 429 TOOMANYREQUESTS with `Retry-After`.
 */
export class RateLimiter {
  readonly requests: string[] = [];
  limit: number;
  used = 0;
  retryAfterSeconds = 30;
  readonly #target: URL;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(target: string, limit: number) {
    this.#target = new URL(target);
    this.limit = limit;
    this.#server = createServer((request, response) => {
      const method = request.method ?? 'GET';
      const path = request.url ?? '/';
      this.requests.push(`${method} ${path}`);
      const counted = method === 'GET' && /\/manifests\//.test(path);
      if (counted && this.used >= this.limit) {
        request.resume();
        response
          .writeHead(429, { 'content-type': 'application/json', 'retry-after': String(this.retryAfterSeconds), ...this.#headers() })
          .end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] }));
        return;
      }
      if (counted) this.used += 1;
      const upstream = httpRequest({ host: this.#target.hostname, port: this.#target.port, method, path, headers: { ...request.headers, host: this.#target.host } }, (answer) => {
        response.writeHead(answer.statusCode ?? 502, { ...answer.headers, ...this.#headers() });
        answer.pipe(response);
      });
      upstream.on('error', () => response.destroy());
      request.pipe(upstream);
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
  }

  static async start(target: string, limit: number): Promise<RateLimiter> {
    const limiter = new RateLimiter(target, limit);
    await new Promise<void>((resolve) => limiter.#server.listen(0, '127.0.0.1', resolve));
    return limiter;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  count(method: string, fragment: string): number {
    return this.requests.filter((line) => line.startsWith(`${method} `) && line.includes(fragment)).length;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #headers(): Record<string, string> {
    return { 'ratelimit-limit': `${this.limit};w=21600`, 'ratelimit-remaining': `${Math.max(0, this.limit - this.used)};w=21600` };
  }
}
