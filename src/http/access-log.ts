import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/** Who each request was authorized as, for its log line; entries go with their requests. */
const callers = new WeakMap<FastifyRequest, string>();

/** Records the signed-in user a request runs as, so the access log names them. */
export function noteCaller(request: FastifyRequest, user: string | undefined): void {
  if (user !== undefined) callers.set(request, user);
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
    const line = {
      method: request.method,
      path: request.url,
      status: reply.statusCode,
      bytes: length === undefined ? 0 : Number(length),
      durationMs: Math.round(reply.elapsedTime * 100) / 100,
      client: request.ip,
      ...(callers.has(request) ? { user: callers.get(request) } : {}),
      userAgent: request.headers['user-agent'],
      ...(reply.raw.writableFinished ? {} : { aborted: true }),
      ...(error ? { err: error } : {}),
    };
    request.log.info(line, 'request');
  }
}
