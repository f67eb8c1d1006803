import { httpRequest, type HttpRequestInit } from '../io/http-request.ts';
import { Authenticator } from './authenticator.ts';
import { readLimited } from './response-body.ts';
import type { CredentialSource } from './credentials.ts';
import { displayUrl, isTemporaryStatus, networkError, UpstreamError } from './errors.ts';
import { parseRetryAfter, withRetries, type RetryPolicy } from './retry.ts';

/** One request as the client describes it; `body` is re-created for every attempt. */
export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: () => Promise<RequestBody>;
  /** Token scopes the request needs (`repository:team/app:pull`). */
  scopes: readonly string[];
  /** For credential lookup in files that hold per-repository entries. */
  repository?: string;
  /** Statuses handed back to the caller instead of thrown (2xx always are). */
  accept?: readonly number[];
  /** Follow redirects, dropping our Authorization when they leave the registry's origin. */
  followRedirects?: boolean;
  /** Whether temporary failures are retried here (false when the caller resumes itself). */
  retry?: boolean;
  signal?: AbortSignal | undefined;
}

export type RequestBody = { stream: ReadableStream<Uint8Array>; length?: number } | { bytes: Uint8Array };

export interface HttpOptions {
  host: string;
  credentials: CredentialSource;
  retry: RetryPolicy;
  userAgent: string;
  /** How long to wait for response headers. */
  timeoutMs: number;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /**
   * Sees every response from the registry (rate-limit headers, say) before it is handled,
   * with when its request was sent (ms since the epoch, sub-millisecond: `performance.timeOrigin +
   * performance.now()`): answers may arrive out of order.
   */
  onResponse?: (response: Response, sentAt: number) => void;
}

const maxRedirects = 5;
const maxErrorBodyBytes = 64 * 1024;

/**
 * Sends requests to one registry: credentials up front once the scheme is
 * known, one more try after a 401 challenge, retries with backoff for
 * temporary failures, and errors that carry the registry's OCI code.
 */
export class RegistryHttp {
  readonly #options: HttpOptions;
  readonly #auth: Authenticator;

  constructor(options: HttpOptions) {
    this.#options = options;
    this.#auth = new Authenticator({ host: options.host, credentials: options.credentials, retry: options.retry, userAgent: options.userAgent });
  }

  async send(spec: RequestSpec): Promise<Response> {
    if (spec.retry === false) return this.#attempt(spec);
    return withRetries(this.#options.retry, () => this.#attempt(spec), {
      signal: spec.signal,
      ...(this.#options.onRetry === undefined ? {} : { onRetry: this.#options.onRetry }),
    });
  }

  async #attempt(spec: RequestSpec): Promise<Response> {
    let sentAt = performance.timeOrigin + performance.now();
    let response = await this.#fetch(spec, await this.#auth.header(spec.scopes, spec.repository, spec.signal));
    this.#options.onResponse?.(response, sentAt);
    if (response.status === 401) {
      const challenge = response.headers.get('www-authenticate');
      await discard(response);
      if (await this.#auth.challenged(challenge, spec.scopes, spec.repository, spec.signal)) {
        sentAt = performance.timeOrigin + performance.now();
        response = await this.#fetch(spec, await this.#auth.header(spec.scopes, spec.repository, spec.signal));
        this.#options.onResponse?.(response, sentAt);
      } else {
        throw await responseError(spec, response, 'authentication required and no usable credentials are configured');
      }
    }
    if ((response.status >= 200 && response.status < 300) || spec.accept?.includes(response.status) === true) return response;
    throw await responseError(spec, response);
  }

  async #fetch(spec: RequestSpec, authorization: string | undefined): Promise<Response> {
    let url = spec.url;
    let sendAuth = authorization;
    for (let hop = 0; ; hop += 1) {
      const headers: Record<string, string> = { 'user-agent': this.#options.userAgent, ...spec.headers };
      if (sendAuth !== undefined) headers['authorization'] = sendAuth;
      const body = hop === 0 && spec.body !== undefined ? await spec.body() : undefined;
      const response = await this.#fetchOnce(url, spec, headers, body);
      if (!spec.followRedirects || response.status < 300 || response.status >= 400 || !response.headers.has('location')) return response;
      if (hop >= maxRedirects) throw new UpstreamError(`${displayUrl(spec.url)}: too many redirects`, { status: response.status, temporary: false });
      await discard(response);
      const next = new URL(response.headers.get('location') as string, url);
      // Presigned storage URLs carry their own authorization; ours must not leak to them.
      if (next.origin !== new URL(url).origin) sendAuth = undefined;
      url = next.toString();
    }
  }

  async #fetchOnce(url: string, spec: RequestSpec, headers: Record<string, string>, body: RequestBody | undefined): Promise<Response> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error(`no response within ${this.#options.timeoutMs} ms`)), this.#options.timeoutMs);
    const signal = spec.signal === undefined ? timeout.signal : AbortSignal.any([spec.signal, timeout.signal]);
    const init: HttpRequestInit = { method: spec.method, headers, signal };
    if (body !== undefined) {
      if ('bytes' in body) {
        init.body = body.bytes;
      } else {
        init.body = body.stream;
        if (body.length !== undefined) headers['content-length'] = String(body.length);
      }
    }
    try {
      return await httpRequest(url, init);
    } catch (error) {
      if (spec.signal?.aborted === true) throw spec.signal.reason ?? error;
      throw networkError(url, timeout.signal.aborted ? timeout.signal.reason : error);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Reads the registry's error body (bounded) into an UpstreamError. */
async function responseError(spec: RequestSpec, response: Response, hint?: string): Promise<UpstreamError> {
  let code: string | undefined;
  let message: string | undefined;
  if (spec.method !== 'HEAD') {
    const text = await readLimited(response, maxErrorBodyBytes).catch(() => '');
    try {
      const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
      const first = body.errors?.[0];
      if (typeof first?.code === 'string') code = first.code;
      if (typeof first?.message === 'string') message = first.message;
    } catch {
      // Not an OCI error body; the status says enough.
    }
  } else {
    await discard(response);
  }
  const what = `${spec.method} ${displayUrl(spec.url)}`;
  const detail = [code, message ?? hint].filter((part) => part !== undefined).join(': ');
  return new UpstreamError(`${what}: HTTP ${response.status}${detail === '' ? '' : ` (${detail})`}`, {
    status: response.status,
    ...(code === undefined ? statusCode(response.status) : { code }),
    temporary: isTemporaryStatus(response.status),
    ...retryAfterOf(response),
  });
}

function statusCode(status: number): { code?: string } {
  if (status === 401) return { code: 'UNAUTHORIZED' };
  if (status === 403) return { code: 'DENIED' };
  if (status === 429) return { code: 'TOOMANYREQUESTS' };
  return {};
}

function retryAfterOf(response: Response): { retryAfter?: number } {
  const value = parseRetryAfter(response.headers.get('retry-after'));
  return value === undefined ? {} : { retryAfter: value };
}

/** Releases a response's connection without reading what nobody wants. */
export async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}
