import type { Socket } from 'node:net';
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
}

export interface CompletedRequest extends ObservedRequest {
  durationSeconds: number;
  /** Bytes of the request as read from the connection: headers, body and any chunk framing. */
  bytesReceived: number;
  /** Bytes written to the connection for the response (headers included). */
  bytesSent: number;
}

/**
 * Told about requests once answered: metrics of the HTTP traffic. Observers
 * never change a response; their failures are logged, not answered. What
 * changes or reads a repository is recorded by the repository (events, pull
 * times), never from here.
 */
export interface RequestObserver {
  afterResponse(request: CompletedRequest): void;
}

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
  app.addHook('onResponse', (request, reply, done) => {
    const completed = new Observation(request, reply);
    completed.durationSeconds = reply.elapsedTime / 1000;
    countBytes(request.raw.socket, completed);
    tellObservers(observers, completed, request.log);
    done();
  });
}

/**
 * The bytes a connection carried for the request just answered on it.
 * Kept on the socket itself, not in a WeakMap: a weak map's entries
 * outlive young-generation collections, which under load let every
 * request reach the old generation (140 MB more at 10k req/s).
 * Per connection, not per request: a small body is often read together
 * with the headers, before any hook runs. Clients send a request after
 * the previous response, so the bytes between two responses are the
 * second request's (pipelining would shift a little between requests).
 */
export function countBytes(connection: Socket, completed: CompletedRequest): void {
  const socket = connection as Socket & { [marksProperty]?: Marks };
  const previous = socket[marksProperty] ?? { read: 0, written: 0 };
  const now = { read: socket.bytesRead, written: socket.bytesWritten };
  socket[marksProperty] = now;
  completed.bytesReceived = Math.max(0, now.read - previous.read);
  completed.bytesSent = Math.max(0, now.written - previous.written);
}

/** Gives a completed request to every observer; a failing observer is logged, never answered. */
export function tellObservers(observers: readonly RequestObserver[], completed: CompletedRequest, log: { error(object: object, message: string): void }): void {
  for (const observer of observers) {
    try {
      observer.afterResponse(completed);
    } catch (error) {
      log.error({ err: error }, 'a request observer failed');
    }
  }
}

/** One per observed request; methods on the prototype, so that nothing is allocated per request but the object itself. */
class Observation implements CompletedRequest {
  readonly endpoint: string;
  readonly method: string;
  readonly status: number;
  readonly repository?: string;
  readonly params: Record<string, string>;
  durationSeconds = 0;
  bytesReceived = 0;
  bytesSent = 0;
  readonly #request: FastifyRequest;

  constructor(request: FastifyRequest, reply: FastifyReply) {
    this.#request = request;
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
}
