import { Readable, Transform, type TransformCallback } from 'node:stream';
import type { Logger } from '../../../log.ts';
import { through } from '../../../io/metered-stream.ts';
import { describeErrorBody, fetchWithin, readJson, unavailable, type RequestInit, type TimedResponse } from './http.ts';

export interface CloudControllerOptions {
  /** The API root, such as https://api.sys.example.com. */
  url: string;
  clientId: string;
  /** Read on each token request, so that a rotated secret file is picked up. */
  clientSecret: () => Promise<string>;
  timeoutMs: number;
  downloadIdleTimeoutMs: number;
  logger: Logger;
}

interface Token {
  value: string;
  /** When to fetch the next one: ahead of `expires_in`, so that no request carries an expired token. */
  renewAt: number;
}

/** How many pages a listing follows at most (at the Cloud Controller's largest page size). */
const maxPages = 20;

/**
 * A Cloud Controller v3 client with its own UAA token (client_credentials):
 * UAA is discovered from GET / (links.uaa.href); the token is renewed
 * before it expires and once more when the Cloud Controller answers 401.
 */
export class CloudControllerClient {
  readonly #options: CloudControllerOptions;
  readonly #base: URL;
  #uaa: string | undefined;
  #token: Token | undefined;
  #pendingToken: Promise<string> | undefined;

  constructor(options: CloudControllerOptions) {
    this.#options = options;
    this.#base = new URL(options.url.endsWith('/') ? options.url : `${options.url}/`);
  }

  /** A resource as JSON, or undefined when the Cloud Controller answers 404. */
  async get(path: string, signal?: AbortSignal): Promise<unknown> {
    const what = `the Cloud Controller (GET ${path})`;
    const { response } = await this.#authorized(this.#url(path), { headers: { accept: 'application/json' } }, what, signal);
    if (response.status === 404) {
      await response.body?.cancel();
      return undefined;
    }
    const body = await readJson(response, what, this.#options.timeoutMs, signal);
    if (!response.ok) throw refused(what, response.status, body);
    return body;
  }

  /** Every resource of a listing, following `pagination.next` (a bounded number of pages). */
  async list(path: string, signal?: AbortSignal): Promise<unknown[]> {
    const resources: unknown[] = [];
    let next: string | undefined = path;
    for (let page = 0; next !== undefined && page < maxPages; page += 1) {
      const body = (await this.get(next, signal)) as { resources?: unknown[]; pagination?: { next?: { href?: unknown } | null } } | undefined;
      if (body === undefined) return resources;
      resources.push(...(body.resources ?? []));
      const href = body.pagination?.next?.href;
      next = typeof href === 'string' ? pathOf(href) : undefined;
    }
    return resources;
  }

  /**
   * The bits behind a download link. The Cloud Controller answers with the
   * bytes or with a redirect to its blobstore; the redirect is followed
   * without the Authorization header, which blobstores such as S3 reject.
   * A body that stalls for the idle timeout fails the stream.
   */
  async download(path: string, signal?: AbortSignal): Promise<Readable> {
    const what = `the Cloud Controller (GET ${path})`;
    let answer = await this.#authorized(this.#url(path), { redirect: 'manual' }, what, signal, true);
    const location = answer.response.headers.get('location');
    if (answer.response.status >= 300 && answer.response.status < 400 && location !== null) {
      await answer.response.body?.cancel();
      const target = new URL(location, this.#url(path)).href;
      answer = await fetchWithin(target, { redirect: 'follow' }, `the blobstore (${new URL(target).host})`, this.#options.timeoutMs, signal, true);
      if (!answer.response.ok) {
        await answer.response.body?.cancel();
        throw unavailable(`the blobstore at ${new URL(target).host} refused the droplet download: HTTP ${answer.response.status}`);
      }
    } else if (!answer.response.ok) {
      throw refused(what, answer.response.status, await readJson(answer.response, what, this.#options.timeoutMs, signal).catch(() => undefined));
    }
    if (answer.response.body === null) throw unavailable(`${what} sent no droplet bits`);
    return through(Readable.fromWeb(answer.response.body), new IdleWatch(this.#options.downloadIdleTimeoutMs, answer));
  }

  async #authorized(url: string, init: RequestInit, what: string, signal?: AbortSignal, bodyUnbounded = false): Promise<TimedResponse> {
    for (let attempt = 1; ; attempt += 1) {
      const token = await this.#currentToken(signal);
      const headers = { ...init.headers, authorization: `bearer ${token}` };
      const answer = await fetchWithin(url, { ...init, headers }, what, this.#options.timeoutMs, signal, bodyUnbounded);
      if (answer.response.status !== 401 || attempt > 1) return answer;
      // Revoked or expired early: one more try with a fresh token.
      await answer.response.body?.cancel();
      if (this.#token?.value === token) this.#token = undefined;
      this.#options.logger.info({ url }, 'Cloud Controller refused the UAA token; fetching a new one');
    }
  }

  #currentToken(signal?: AbortSignal): Promise<string> {
    if (this.#token !== undefined && Date.now() < this.#token.renewAt) return Promise.resolve(this.#token.value);
    // One token request at a time, shared by every waiting pull; not tied to one pull's signal.
    this.#pendingToken ??= this.#fetchToken().finally(() => {
      this.#pendingToken = undefined;
    });
    return signal === undefined ? this.#pendingToken : raceAbort(this.#pendingToken, signal);
  }

  async #fetchToken(): Promise<string> {
    const uaa = await this.#uaaUrl();
    const what = `UAA at ${uaa}`;
    const credentials = Buffer.from(`${this.#options.clientId}:${await this.#options.clientSecret()}`).toString('base64');
    const { response } = await fetchWithin(
      new URL('oauth/token', uaa.endsWith('/') ? uaa : `${uaa}/`).href,
      {
        method: 'POST',
        headers: { authorization: `Basic ${credentials}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: 'grant_type=client_credentials',
      },
      what,
      this.#options.timeoutMs,
    );
    const body = (await readJson(response, what, this.#options.timeoutMs)) as { access_token?: unknown; expires_in?: unknown };
    if (!response.ok) {
      const detail = describeErrorBody(body);
      throw unavailable(`${what} refused the client credentials of "${this.#options.clientId}": HTTP ${response.status}${detail === '' ? '' : ` ${detail}`}`);
    }
    if (typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
      throw unavailable(`${what} answered without access_token and expires_in`);
    }
    const lifetime = body.expires_in * 1000;
    this.#token = { value: body.access_token, renewAt: Date.now() + lifetime - Math.min(60_000, lifetime / 4) };
    return body.access_token;
  }

  async #uaaUrl(): Promise<string> {
    if (this.#uaa !== undefined) return this.#uaa;
    const what = `the Cloud Controller at ${this.#base.origin}`;
    const { response } = await fetchWithin(this.#base.href, { headers: { accept: 'application/json' } }, what, this.#options.timeoutMs);
    const body = (await readJson(response, what, this.#options.timeoutMs)) as { links?: { uaa?: { href?: unknown } } };
    const href = body.links?.uaa?.href;
    if (!response.ok || typeof href !== 'string') throw unavailable(`${what} does not name its UAA (links.uaa.href in GET /)`);
    this.#uaa = href;
    return href;
  }

  #url(path: string): string {
    return new URL(path.replace(/^\//, ''), this.#base).href;
  }
}

/** A link's path and query, resolved against the configured API root (the API may know itself by another host name). */
function pathOf(href: string): string {
  const url = new URL(href);
  return `${url.pathname}${url.search}`;
}

function refused(what: string, status: number, body: unknown): Error {
  const detail = describeErrorBody(body);
  return unavailable(`${what} answered HTTP ${status}${detail === '' ? '' : ` (${detail})`}`);
}

function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Fails a download whose bytes stop coming for `idleMs`, and aborts the request under it. */
class IdleWatch extends Transform {
  readonly #idleMs: number;
  readonly #request: TimedResponse;
  #timer: NodeJS.Timeout;

  constructor(idleMs: number, request: TimedResponse) {
    super();
    this.#idleMs = idleMs;
    this.#request = request;
    this.#timer = this.#arm();
  }

  #arm(): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const error = unavailable(`the droplet download stalled: no bytes for ${this.#idleMs} ms`);
      this.#request.abort(error);
      this.destroy(error);
    }, this.#idleMs);
    timer.unref();
    return timer;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#timer.refresh();
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    clearTimeout(this.#timer);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#timer);
    callback(error);
  }
}
