import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isRegistryError, RegistryError, type ErrorCode } from '../errors/registry-error.ts';
import { isMetadataUnavailable, unavailable, unavailableDependency } from '../errors/unavailable.ts';

/** The spec's error body. */
export function errorBody(error: RegistryError): { errors: { code: ErrorCode; message: string; detail?: unknown }[] } {
  const entry: { code: ErrorCode; message: string; detail?: unknown } = { code: error.code, message: error.message };
  if (error.detail !== undefined) entry.detail = error.detail;
  return { errors: [entry] };
}

/**
 * The one place an error becomes a response. Registry errors go out as
 * they are; framework errors keep their 4xx status under the closest spec
 * code; anything else is a 500 whose body names only the request id.
 */
export function sendError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const registryError = toRegistryError(error, request.id);
  const dependency = unavailableDependency(registryError);
  if (dependency !== undefined) {
    // Expected during an outage: one line per request, no stack.
    const cause = registryError.cause ?? error;
    request.log.warn({ requestId: request.id, unavailable: dependency, reason: cause instanceof Error ? cause.message : String(cause) }, 'dependency unavailable');
  } else if (registryError.status >= 500) {
    request.log.error({ err: error, requestId: request.id }, 'request failed');
  } else if (!isRegistryError(error)) {
    request.log.debug({ err: error }, 'request refused by the framework');
  }
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

function toRegistryError(error: unknown, requestId: string): RegistryError {
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

function codeForStatus(status: number): ErrorCode {
  const byStatus: Partial<Record<number, ErrorCode>> = {
    401: 'UNAUTHORIZED',
    403: 'DENIED',
    404: 'NOT_FOUND',
    405: 'UNSUPPORTED',
    413: 'SIZE_INVALID',
    415: 'UNSUPPORTED',
    416: 'RANGE_INVALID',
    429: 'TOOMANYREQUESTS',
  };
  return byStatus[status] ?? 'UNSUPPORTED';
}

