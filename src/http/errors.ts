import type { IncomingMessage, ServerResponse } from 'node:http';
import { http } from '../io/node-http.ts';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isRegistryError, RegistryError, type ErrorCode } from '../errors/registry-error.ts';
import { storageFullOf } from '../errors/storage-full.ts';
import { isMetadataUnavailable, retryAfterSeconds, unavailable, unavailableDependency } from '../errors/unavailable.ts';

/** The spec's error body. */
export function errorBody(error: RegistryError): { errors: { code: ErrorCode; message: string; detail?: unknown }[] } {
  return { errors: [error, ...error.more].map(errorEntry) };
}

function errorEntry(error: RegistryError): { code: ErrorCode; message: string; detail?: unknown } {
  const entry: { code: ErrorCode; message: string; detail?: unknown } = { code: error.code, message: error.message };
  if (error.detail !== undefined) entry.detail = error.detail;
  return entry;
}

/**
 * The one place an error becomes a response. Registry errors go out as
 * they are; framework errors keep their 4xx status under the closest spec
 * code; anything else is a 500 whose body names only the request id.
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const registryError = toRegistryError(error, request.id);
  logError(error, registryError, request);
  reply.code(registryError.status).headers(registryError.headers).header('content-type', 'application/json');
  if (registryError.status >= 500 && isRegistryError(error)) reply.raw.statusMessage = reasonPhrase(registryError);
  return reply.send(request.method === 'HEAD' ? undefined : JSON.stringify(errorBody(registryError)));
}

/**
 * Docker and other clients print only the status line of a 5xx, never its
 * body: an explained failure (a Cloud Controller that refused, a rootfs not
 * imported) carries its message in the reason phrase too, in printable
 * ASCII, bounded. Messages never hold secrets; internal errors keep the
 * standard phrase.
 */
function reasonPhrase(error: RegistryError): string {
  const message = error.message.replace(/[^\x20-\x7e]/g, '?');
  return message.length > 300 ? `${message.slice(0, 300)}...` : message;
}

/**
 * Expected conditions get one line at their level and no stack: a client
 * that went away (info), a dependency that is down (warn, naming it), a
 * dependency the registry relies on failing in a way it reports (a
 * RegistryError of 502, 503 or 507: warn). Only the unexpected is an error
 * with its stack.
 */
function logError(error: unknown, registryError: RegistryError, request: FastifyRequest): void {
  const socket = request.raw.socket as { destroyed?: boolean } | null;
  const full = storageFullOf(error);
  const dependency = unavailableDependency(registryError);
  if (full !== undefined) {
    // The operator must act: error level, but one line, no stack.
    request.log.error({ requestId: request.id, store: full.store, code: full.code, where: full.where, reason: full.reason }, `storage full: ${full.where} (${full.code})`);
  } else if (dependency !== undefined) {
    // Expected during an outage: one line per request, no stack.
    request.log.warn({ requestId: request.id, unavailable: dependency, reason: reasonOf(registryError.cause ?? error) }, 'dependency unavailable');
  } else if (socket === null || socket.destroyed === true) {
    request.log.info({ requestId: request.id, reason: reasonOf(error) }, 'the client went away before the response was complete');
  } else if (registryError.status >= 500 && isRegistryError(error) && registryError.status !== 500) {
    request.log.warn({ requestId: request.id, status: registryError.status, code: registryError.code, cause: reasonOf(error.cause) }, error.message);
  } else if (registryError.status >= 500) {
    request.log.error({ err: error, requestId: request.id }, 'request failed');
  } else if (!isRegistryError(error)) {
    request.log.debug({ err: error }, 'request refused by the framework');
  }
}

/** An error's message with its causes', on one line. */
function reasonOf(error: unknown): string | undefined {
  if (error === undefined || error === null) return undefined;
  if (!(error instanceof Error)) return String(error);
  const cause = reasonOf(error.cause);
  return cause === undefined || error.message.includes(cause) ? error.message : `${error.message}: ${cause}`;
}

function toRegistryError(error: unknown, requestId: string): RegistryError {
  if (storageFullOf(error) !== undefined) {
    // 507 tells clients what happened (docker and containerd print the
    // status line of a 5xx); which store and where stays in the log.
    return new RegistryError('UNKNOWN', "the registry's storage is full: nothing was stored; try again once space has been freed", {
      status: 507,
      detail: { requestId },
    });
  }
  if (isRegistryError(error)) return error;
  if (isMetadataUnavailable(error)) return unavailable('metadata', error);
  const status = (error as FastifyError | undefined)?.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    return new RegistryError(codeForStatus(status), (error as Error).message, { status });
  }
  return new RegistryError('UNKNOWN', `internal error; quote request id ${requestId} to the operator`, {
    detail: { requestId },
  });
}

/** The spec's table has no code for a bad URL, a timeout or a 404 route: those are UNSUPPORTED, with the reason in the message. */
function codeForStatus(status: number): ErrorCode {
  const byStatus: Partial<Record<number, ErrorCode>> = {
    401: 'UNAUTHORIZED',
    403: 'DENIED',
    413: 'SIZE_INVALID',
    429: 'TOOMANYREQUESTS',
  };
  return byStatus[status] ?? 'UNSUPPORTED';
}

/** A request that arrives while the server drains: answered at once, so the client retries elsewhere or later. */
export function shuttingDown(): RegistryError {
  return new RegistryError('TOOMANYREQUESTS', 'the registry is shutting down; try again', {
    status: 503,
    headers: { 'retry-after': String(retryAfterSeconds) },
  });
}

/** HTTP/1.1 requires Host (RFC 9112, section 3.2); Node would answer an empty 400 itself. */
export function missingHost(): RegistryError {
  return new RegistryError('UNSUPPORTED', 'the request has no Host header', { status: 400 });
}

/**
 * Answers an Expect header other than 100-continue (which Node handles
 * itself): 417 in the spec's error format instead of Node's empty one.
 */
export function answerExpectation(request: IncomingMessage, response: ServerResponse): void {
  const expectation = String(request.headers.expect ?? '').slice(0, 100);
  const body = JSON.stringify(errorBody(new RegistryError('UNSUPPORTED', `the expectation "${expectation}" is not supported`, { status: 417 })));
  response.writeHead(417, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
  response.end(body);
}

/**
 * Answers what Node's HTTP parser rejects before any request exists (a
 * header past the limit, headers that arrive too slowly, bytes that are not
 * HTTP) in the spec's error format, then closes the connection.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, message] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'the request did not arrive in time']
      : error.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'the request line and headers exceed the limit']
        : [400, 'the request is not valid HTTP'];
  const body = JSON.stringify(errorBody(new RegistryError('UNSUPPORTED', message, { status })));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
