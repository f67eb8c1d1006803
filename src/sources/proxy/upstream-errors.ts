import { isUpstreamError } from '../../client/errors.ts';
import { isRegistryError, RegistryError } from '../../errors/registry-error.ts';

/**
 * True when a failure says the upstream is unavailable (unreachable,
 * timing out, 5xx, rate limiting, refusing our credentials) rather than
 * that the content does not exist: the cases where cached content is
 * served instead.
 */
export function isUpstreamOutage(error: unknown): boolean {
  if (!isUpstreamError(error)) return !isRegistryError(error);
  return error.status === undefined || error.temporary || error.status === 401 || error.status === 403;
}

/** True when the upstream answered that the thing does not exist. */
export function isUpstreamNotFound(error: unknown): boolean {
  return isUpstreamError(error) && (error.status === 404 || error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN' || error.code === 'BLOB_UNKNOWN');
}

/**
 * What the proxy's client is told when the upstream could not provide
 * something that is not cached. Messages name the upstream and say what
 * is missing; they never carry the upstream's internals beyond its status.
 */
export function upstreamFailure(error: unknown, upstream: string, what: string, retryAfterSeconds?: number): RegistryError {
  if (isRegistryError(error)) return error;
  if (!isUpstreamError(error)) {
    return new RegistryError('UNKNOWN', `upstream ${upstream} failed while fetching ${what}, which is not cached`, { status: 502, cause: error });
  }
  if (isUpstreamNotFound(error)) {
    const code = error.code === 'BLOB_UNKNOWN' || what.startsWith('blob') ? 'BLOB_UNKNOWN' : error.code === 'NAME_UNKNOWN' ? 'NAME_UNKNOWN' : 'MANIFEST_UNKNOWN';
    return new RegistryError(code, `${what} does not exist at upstream ${upstream}`, { cause: error });
  }
  if (error.status === 401 || error.status === 403) {
    return new RegistryError('NAME_UNKNOWN', `upstream ${upstream} refused access to ${what}: it does not exist there, or needs credentials this cache is not configured with`, {
      cause: error,
    });
  }
  if (error.status === 429) {
    const retryAfter = error.retryAfter ?? retryAfterSeconds;
    return new RegistryError('TOOMANYREQUESTS', `upstream ${upstream} is rate-limiting this cache and ${what} is not cached; try again later`, {
      cause: error,
      ...(retryAfter === undefined ? {} : { headers: { 'retry-after': String(Math.ceil(retryAfter)) } }),
    });
  }
  const reason = error.status === undefined ? 'is unreachable' : `answered HTTP ${error.status}`;
  return new RegistryError('UNKNOWN', `upstream ${upstream} ${reason} and ${what} is not cached`, { status: 502, cause: error });
}
