import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { queryValues } from './body.ts';
import { classifyV2 } from './v2-routes.ts';

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

/** Where a connection's byte counts stood when its previous response was done. */
interface Marks {
  read: number;
  written: number;
}

/** Registers the hooks that feed `observers`. */
export function observeRequests(app: FastifyInstance, observers: readonly RequestObserver[]): void {
  // Per connection, not per request: a small body is often read together
  // with the headers, before any hook runs. Clients send a request after
  // the previous response, so the bytes between two responses are the
  // second request's (pipelining would shift a little between requests).
  const marks = new WeakMap<object, Marks>();
  const described = new WeakMap<FastifyRequest, ObservedRequest>();
  const describe = (request: FastifyRequest, reply: FastifyReply): ObservedRequest => {
    let observed = described.get(request);
    if (observed === undefined) {
      observed = observe(request, reply);
      described.set(request, observed);
    }
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
    const socket = request.raw.socket;
    const previous = marks.get(socket) ?? { read: 0, written: 0 };
    const now = { read: socket.bytesRead, written: socket.bytesWritten };
    marks.set(socket, now);
    const completed: CompletedRequest = Object.assign(describe(request, reply), {
      durationSeconds: reply.elapsedTime / 1000,
      bytesReceived: Math.max(0, now.read - previous.read),
      bytesSent: Math.max(0, now.written - previous.written),
    });
    for (const observer of observers) {
      try {
        observer.afterResponse?.(completed);
      } catch (error) {
        request.log.error({ err: error }, 'a request observer failed');
      }
    }
  });
}

function observe(request: FastifyRequest, reply: FastifyReply): ObservedRequest {
  const route = request.routeOptions.url;
  const wildcard = (request.params as { '*'?: string } | undefined)?.['*'];
  const target = route === '/v2/*' || route === '/v2' ? classifyV2(route === '/v2' ? '' : (wildcard ?? '')) : undefined;
  const endpoint = target?.endpoint ?? (route === undefined ? 'unknown' : route.replace(/^\//, '').replace(/[^a-z0-9]+/gi, '_') || 'root');
  const observed: ObservedRequest = {
    endpoint,
    method: request.method,
    status: reply.statusCode,
    params: target?.params ?? {},
    query: (name) => queryValues(request.query, name),
    requestHeader: (name) => headerValue(request.headers[name]),
    responseHeader: (name) => headerValue(reply.getHeader(name)),
  };
  if (target?.name !== undefined) observed.repository = target.name;
  return observed;
}

function headerValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  return Array.isArray(value) ? String(value[0]) : String(value);
}
