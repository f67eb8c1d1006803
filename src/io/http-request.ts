import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';

/** What one request sends; the body is bytes or a stream that is never buffered. */
export interface HttpRequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
  signal?: AbortSignal | undefined;
}

/** undici, loaded by the first request: a registry that never calls another host never loads its megabyte of JavaScript. */
let undici: Promise<typeof import('undici')> | undefined;

/** Statuses whose response has no body (a Response cannot be built with one). */
const nullBodyStatuses = new Set([101, 103, 204, 205, 304]);

/**
 * One HTTP request to a host the user configured (a registry, a token
 * service, a presigned storage URL, a Cloud Controller), answered as a
 * WHATWG Response whose body streams.
 *
 * Why not the global fetch: the Fetch standard refuses its "bad ports"
 * (1, 6000, 6665–6669, 10080, …), and a registry may listen on any port, as
 * skopeo and docker allow. undici's request API has no such rule. It uses
 * the process-wide dispatcher that the global fetch uses too (same agent,
 * same connection pool, the proxy settings Node applies to it), follows no
 * redirects (callers decide whether Authorization may follow), and
 * `signal` aborts the request and, after the headers, its body.
 */
export async function httpRequest(url: string | URL, init: HttpRequestInit = {}): Promise<Response> {
  const method = init.method ?? 'GET';
  const body = init.body;
  const { request } = await (undici ??= import('undici'));
  const answer = await request(url, {
    method: method as 'GET',
    headers: init.headers ?? {},
    ...(body === undefined ? {} : { body: typeof body === 'string' || body instanceof Uint8Array ? body : Readable.fromWeb(body as NodeReadableStream<Uint8Array>) }),
    ...(init.signal === undefined ? {} : { signal: init.signal }),
  });
  const headers = new Headers();
  for (const [name, value] of Object.entries(answer.headers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  const empty = method === 'HEAD' || nullBodyStatuses.has(answer.statusCode);
  if (empty) answer.body.resume();
  const response = new Response(empty ? null : pulled(answer.body), { status: answer.statusCode, headers });
  // A built Response has no URL; messages name the one asked.
  Object.defineProperty(response, 'url', { value: String(url) });
  return response;
}

/**
 * The body as a web stream that reads only when pulled (backpressure end to
 * end); cancelling it destroys the body, which closes or frees the connection.
 */
function pulled(body: Readable): ReadableStream<Uint8Array> {
  const chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const next = await chunks.next();
        if (next.done === true) controller.close();
        else controller.enqueue(next.value);
      },
      cancel(reason) {
        // The abort this causes is what the reader asked for, not a failure to report.
        body.on('error', () => undefined);
        body.destroy(reason instanceof Error ? reason : undefined);
      },
    },
    { highWaterMark: 0 },
  );
}
