import { RegistryError } from '../../../errors/registry-error.ts';
import { httpRequest, type HttpRequestInit } from '../../../io/http-request.ts';

/** JSON answers of the Cloud Controller and UAA are small; anything beyond this is refused. */
const maxJsonBytes = 8 * 1024 * 1024;

/** A failure talking to the Cloud Controller, UAA or the blobstore: 503, worded for an operator. */
export function unavailable(message: string, cause?: unknown): RegistryError {
  return new RegistryError('UNKNOWN', message, { status: 503, ...(cause === undefined ? {} : { cause }) });
}

/** An answer whose headers arrived, with the means to abort the rest. */
export interface TimedResponse {
  response: Response;
  /** Stops the request and its body (used when the body stalls). */
  abort(reason: unknown): void;
}

/** A request; `redirect: 'follow'` follows up to five redirects (only requests without credentials ask it). */
export type RequestInit = Omit<HttpRequestInit, 'signal'> & { redirect?: 'follow' | 'manual' };

const maxRedirects = 5;

/**
 * A request with a deadline (any port: see httpRequest): `timeoutMs` covers the answer's headers and then
 * its body, unless `bodyUnbounded` (downloads, which watch for stalls
 * instead). Network failures and timeouts become 503s naming `what`.
 */
export async function fetchWithin(url: string, init: RequestInit, what: string, timeoutMs: number, signal?: AbortSignal, bodyUnbounded = false): Promise<TimedResponse> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`${what} timed out`, 'TimeoutError')), timeoutMs);
  timer.unref();
  const combined = signal === undefined ? controller.signal : AbortSignal.any([signal, controller.signal]);
  try {
    const response = await follow(url, init, combined);
    if (bodyUnbounded) clearTimeout(timer);
    return { response, abort: (reason) => controller.abort(reason) };
  } catch (error) {
    clearTimeout(timer);
    throw requestFailure(error, what, timeoutMs, signal);
  }
}

async function follow(url: string, init: RequestInit, signal: AbortSignal): Promise<Response> {
  const { redirect, ...request } = init;
  let target = url;
  for (let hop = 0; ; hop += 1) {
    const response = await httpRequest(target, { ...request, signal });
    const location = response.headers.get('location');
    if (redirect !== 'follow' || response.status < 300 || response.status >= 400 || location === null || hop >= maxRedirects) return response;
    await response.body?.cancel();
    target = new URL(location, target).href;
  }
}

/** Reads a JSON body of bounded size; the request's deadline still applies. */
export async function readJson(response: Response, what: string, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (declared > maxJsonBytes) throw unavailable(`${what} answered with ${declared} bytes of JSON, more than ${maxJsonBytes}`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    if (response.body !== null) {
      for await (const chunk of response.body) {
        total += chunk.byteLength;
        if (total > maxJsonBytes) throw unavailable(`${what} answered with more than ${maxJsonBytes} bytes of JSON`);
        chunks.push(chunk);
      }
    }
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw requestFailure(error, what, timeoutMs, signal);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (cause) {
    throw unavailable(`${what} answered with something that is not JSON (HTTP ${response.status})`, cause);
  }
}

/** The `errors[0]` of a Cloud Controller error body, or UAA's `error_description`, for messages. */
export function describeErrorBody(body: unknown): string {
  if (typeof body !== 'object' || body === null) return '';
  const record = body as { errors?: { title?: unknown; detail?: unknown }[]; error?: unknown; error_description?: unknown };
  const first = record.errors?.[0];
  if (first !== undefined) return [first.title, first.detail].filter((part) => typeof part === 'string').join(': ');
  return [record.error, record.error_description].filter((part) => typeof part === 'string').join(': ');
}

function requestFailure(error: unknown, what: string, timeoutMs: number, signal?: AbortSignal): unknown {
  if (signal?.aborted === true) return signal.reason ?? error;
  if (error instanceof RegistryError) return error;
  const name = (error as { name?: unknown } | undefined)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return unavailable(`${what} did not answer within ${timeoutMs} ms`, error);
  // fetch wraps the network error in `cause`; undici's request throws it as it is.
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause ?? (error as { code?: unknown; message?: unknown } | undefined);
  const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : String(error);
  return unavailable(`${what} is unreachable (${reason})`, error);
}
