import { Forwarder } from './forwarder.ts';

/**
 * A stand-in for Docker Hub's rate limiting in front of a registry: every
 * manifest GET counts against `limit` (HEADs and blobs do not, as on Docker
 * Hub); every answer carries `ratelimit-limit: L;w=21600` and
 * `ratelimit-remaining: R;w=21600`; once the limit is used up, manifest
 * GETs are answered 429 TOOMANYREQUESTS with `Retry-After`.
 */
export class RateLimiter {
  limit: number;
  used = 0;
  retryAfterSeconds = 30;
  readonly #forwarder: Forwarder;

  private constructor(forwarder: Forwarder, limit: number) {
    this.#forwarder = forwarder;
    this.limit = limit;
    forwarder.hook = (method, path) => {
      const counted = method === 'GET' && /\/manifests\//.test(path);
      if (counted && this.used >= this.limit) {
        return {
          respond: {
            status: 429,
            headers: { 'retry-after': String(this.retryAfterSeconds), ...this.#headers() },
            body: JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] }),
          },
        };
      }
      if (counted) this.used += 1;
      return { headers: this.#headers() };
    };
  }

  static async start(target: string, limit: number): Promise<RateLimiter> {
    return new RateLimiter(await Forwarder.start(target), limit);
  }

  /** Every request seen, as `METHOD path`. */
  get requests(): string[] {
    return this.#forwarder.requests;
  }

  get url(): string {
    return this.#forwarder.url;
  }

  count(method: string, fragment: string): number {
    return this.#forwarder.count(method, fragment);
  }

  close(): Promise<void> {
    return this.#forwarder.close();
  }

  #headers(): Record<string, string> {
    return { 'ratelimit-limit': `${this.limit};w=21600`, 'ratelimit-remaining': `${Math.max(0, this.limit - this.used)};w=21600` };
  }
}
