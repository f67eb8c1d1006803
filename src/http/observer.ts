import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { queryValues } from './request-parts.ts';
import { classifyV2, type V2Target } from './v2-routes.ts';

/** A request as observers see it: what it addressed and how it was answered. */
export interface ObservedRequest {
  /** A fixed set of names: the /v2/ endpoint labels ('manifest', 'blob', 'blob_upload', …), 'base', 'catalog', or the route ('healthz', 'metrics', …); 'unknown' for no route. */
  endpoint: string;
  method: string;
  status: number;
  /** The repository name as the path writes it (not validated). */
  repository?: string;
  /** The path's reference, digest or upload id. */
  params: Record<string, string>;
  /** Values of a query parameter. */
  query(name: string): string[];
  requestHeader(name: string): string | undefined;
  responseHeader(name: string): string | undefined;
}

export interface CompletedRequest extends ObservedRequest {
  durationSeconds: number;
  /** Bytes of the request as read from the connection: headers, body and any chunk framing. */
  bytesReceived: number;
  /** Bytes written to the connection for the response (headers included). */
  bytesSent: number;
}

/** Told about requests: metrics, events. Observers never change a response; their failures are logged, not answered. */
export interface RequestObserver {
  /** Awaited before the response is sent: for what must be recorded before the client hears of it. Keep it short. */
  beforeSend?(request: ObservedRequest): Promise<void>;
  afterResponse?(request: CompletedRequest): void;
}

const observedProperty = 'berthObserved';
const targetProperty = 'berthTarget';

/** Declares where the /v2/ handler notes what a request addresses (createApp calls it once). */
export function declareTargets(app: FastifyInstance): void {
  app.decorateRequest(targetProperty, null);
}

/**
 * Notes the matched endpoint and repository (after `?ns=` mapping), so that
 * observers need not match the path again.
 */
export function noteTarget(request: FastifyRequest, match: { label: string; name: string; params: Record<string, string> }): void {
  (request as unknown as Record<typeof targetProperty, V2Target | null>)[targetProperty] = { endpoint: match.label, name: match.name, params: match.params };
}

const marksProperty = Symbol('berth.byteMarks');

/** Where a connection's byte counts stood when its previous response was done. */
interface Marks {
  read: number;
  written: number;
}

/** Registers the hooks that feed `observers`. */
export function observeRequests(app: FastifyInstance, observers: readonly RequestObserver[]): void {
  // Kept on the request and the socket themselves, not in WeakMaps: a weak
  // map's entries outlive young-generation collections, which under load
  // let every request reach the old generation (140 MB more at 10k req/s).
  app.decorateRequest(observedProperty, null);
  const describe = (request: FastifyRequest, reply: FastifyReply): Observation => {
    const holder = request as unknown as Record<typeof observedProperty, Observation | null>;
    const observed = holder[observedProperty] ?? new Observation(request, reply);
    holder[observedProperty] = observed;
    observed.status = reply.statusCode;
    return observed;
  };
  const before = observers.filter((observer) => observer.beforeSend !== undefined);
  if (before.length > 0) {
    app.addHook('onSend', async (request, reply, payload) => {
      const observed = describe(request, reply);
      for (const observer of before) {
        await observer.beforeSend?.(observed).catch((error: unknown) => request.log.error({ err: error }, 'a request observer failed'));
      }
      return payload;
    });
  }
  app.addHook('onResponse', async (request, reply) => {
    // Per connection, not per request: a small body is often read together
    // with the headers, before any hook runs. Clients send a request after
    // the previous response, so the bytes between two responses are the
    // second request's (pipelining would shift a little between requests).
    const socket = request.raw.socket as typeof request.raw.socket & { [marksProperty]?: Marks };
    const previous = socket[marksProperty] ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    socket[marksProperty] = now;
    const completed = describe(request, reply);
    completed.durationSeconds = reply.elapsedTime / 1000;
    completed.bytesReceived = Math.max(0, now.read - previous.read);
    completed.bytesSent = Math.max(0, now.written - previous.written);
    for (const observer of observers) {
      try {
        observer.afterResponse?.(completed);
      } catch (error) {
        request.log.error({ err: error }, 'a request observer failed');
      }
    }
  });
}

/** One per observed request; methods on the prototype, so that nothing is allocated per request but the object itself. */
class Observation implements CompletedRequest {
  readonly endpoint: string;
  readonly method: string;
  status: number;
  readonly repository?: string;
  readonly params: Record<string, string>;
  durationSeconds = 0;
  bytesReceived = 0;
  bytesSent = 0;
  readonly #request: FastifyRequest;
  readonly #reply: FastifyReply;

  constructor(request: FastifyRequest, reply: FastifyReply) {
    this.#request = request;
    this.#reply = reply;
    // The registry API by its path (cheap); other routes by their (fixed) route pattern.
    const noted = (request as unknown as Record<typeof targetProperty, V2Target | null | undefined>)[targetProperty] ?? undefined;
    const wildcard = (request.params as { '*'?: string } | undefined)?.['*'];
    const target = noted ?? (wildcard !== undefined || /^\/v2\/?(\?|$)/.test(request.url) ? classifyV2(wildcard ?? '') : undefined);
    const route = target === undefined ? request.routeOptions.url : undefined;
    this.endpoint = target?.endpoint ?? (route === undefined ? 'unknown' : route.replace(/^\//, '').replace(/[^a-z0-9]+/gi, '_') || 'root');
    this.method = request.method;
    this.status = reply.statusCode;
    this.params = target?.params ?? {};
    if (target?.name !== undefined) this.repository = target.name;
  }

  query(name: string): string[] {
    return queryValues(this.#request.query, name);
  }

  requestHeader(name: string): string | undefined {
    return headerValue(this.#request.headers[name]);
  }

  responseHeader(name: string): string | undefined {
    return headerValue(this.#reply.getHeader(name));
  }
}

function headerValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return Array.isArray(value) ? String(value[0]) : String(value);
}
