import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

const callerProperty = 'berthCaller';
type WithCaller = Record<typeof callerProperty, string | null>;

/** Declares where a request keeps who it was authorized as (createApp calls it once). */
export function declareCallers(app: FastifyInstance): void {
  app.decorateRequest(callerProperty, null);
}

/**
 * Records the signed-in user a request runs as, so the access log names
 * them. Kept on the request, not in a WeakMap: weak-map entries outlive
 * young-generation collections (see observer.ts).
 */
export function noteCaller(request: FastifyRequest, user: string | undefined): void {
  if (user !== undefined) (request as unknown as WithCaller)[callerProperty] = user;
}

/**
 * One line per request, written when the response is done: what was asked,
 * what was answered, how long it took and who asked. Fastify's own
 * two-line request logging is replaced by this.
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {}

  /** A client closing a download early is routine (it had what it needed, or gave up). */
  override streamError(error: Error, request: FastifyRequest): void {
    request.log.debug({ err: error }, 'response stream closed early');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const length = reply.getHeader('content-length');
    const user = (request as unknown as WithCaller)[callerProperty];
    const line = accessLine({
      method: request.method,
      path: request.url,
      status: reply.statusCode,
      bytes: length === undefined ? 0 : Number(length),
      elapsedMs: reply.elapsedTime,
      client: request.ip,
      user: user ?? undefined,
      userAgent: request.headers['user-agent'],
      complete: reply.raw.writableFinished,
      error: error ?? undefined,
    });
    request.log.info(line, 'request');
  }
}

/** What an access-log line says about a request. */
export interface AccessFacts {
  /** Given when the logger has no per-request binding for it (hot reads). */
  reqId?: string;
  method: string;
  path: string;
  status: number;
  bytes: number;
  elapsedMs: number;
  client: string;
  user: string | undefined;
  userAgent: string | undefined;
  /** Whether the response was sent in full (the client did not leave first). */
  complete: boolean;
  error?: Error | undefined;
}

/**
 * The access-log line's fields, in their order: one object literal of a
 * fixed shape; absent fields are left out by pino's serializer (undefined).
 * `reqId` comes first, where a per-request child logger's binding stands.
 */
export function accessLine(facts: AccessFacts): Record<string, unknown> {
  return {
    reqId: facts.reqId,
    method: facts.method,
    path: facts.path,
    status: facts.status,
    bytes: facts.bytes,
    durationMs: Math.round(facts.elapsedMs * 100) / 100,
    client: facts.client,
    user: facts.user,
    userAgent: facts.userAgent,
    aborted: facts.complete ? undefined : true,
    err: facts.error,
  };
}
