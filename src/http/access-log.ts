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
    // One object literal of a fixed shape; absent fields are left out by pino's serializer (undefined).
    const line = {
      method: request.method,
      path: request.url,
      status: reply.statusCode,
      bytes: length === undefined ? 0 : Number(length),
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      client: request.ip,
      user: user === null ? undefined : user,
      userAgent: request.headers['user-agent'],
      aborted: reply.raw.writableFinished ? undefined : true,
      err: error ? error : undefined,
    };
    request.log.info(line, 'request');
  }
}
