import { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import pino from 'pino';

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
    logAccess(request.log, {
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

const { streamSym, chindingsSym, timeSym, lsCacheSym, endSym, mixinSym, messageKeySym, nestedKeySym, needsMetadataGsym } = pino.symbols;
/** Pino's info level. */
const info = 30;

/** A pino logger's part that its own write uses (`pino.symbols`). */
function part<T>(logger: FastifyBaseLogger, symbol: symbol): T {
  return (logger as unknown as Record<symbol, unknown>)[symbol] as T;
}

/**
 * Writes a request's access-log line: the line pino writes for
 * `logger.info(accessLine(facts), 'request')`, byte for byte
 * (test/http/access-log.test.ts), built with one `JSON.stringify` and
 * written to the logger's own stream. Pino's generic path (each field
 * stringified on its own, the line assembled piece by piece) cost about
 * 4 µs a line, one of the largest parts of a hot read (docs/decisions.md,
 * "Access-log lines without pino's generic path"). A line with an error,
 * and loggers that transform lines (a mixin, a nested key, a stream that
 * wants each line's level such as pino-pretty's), go through pino as
 * before.
 */
export function logAccess(logger: FastifyBaseLogger, facts: AccessFacts): void {
  const stream = part<{ write(line: string): unknown; [needsMetadataGsym]?: boolean } | undefined>(logger, streamSym);
  const levels = logger as unknown as { isLevelEnabled?(level: string): boolean };
  if (
    facts.error !== undefined ||
    stream === undefined ||
    levels.isLevelEnabled === undefined ||
    stream[needsMetadataGsym] === true ||
    part(logger, mixinSym) !== undefined ||
    part(logger, nestedKeySym) !== null ||
    part(logger, messageKeySym) !== 'msg'
  ) {
    logger.info(accessLine(facts), 'request');
    return;
  }
  if (!levels.isLevelEnabled('info')) return;
  const fields = JSON.stringify(accessLine(facts));
  const level = part<Record<number, string>>(logger, lsCacheSym)[info];
  const time = part<() => string>(logger, timeSym)();
  stream.write(`${level}${time}${part<string>(logger, chindingsSym)},${fields.slice(1, -1)},"msg":"request"${part<string>(logger, endSym)}`);
}
