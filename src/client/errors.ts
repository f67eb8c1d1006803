/**
 * A remote registry (or token service) refused a request or could not be
 * reached. Callers decide what it means for them: the proxy maps it to an
 * OCI error for its client, `berth copy` to an exit code.
 */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  /** The HTTP status, or undefined when no response arrived. */
  readonly status: number | undefined;
  /** The first OCI error code in the response body, when there was one. */
  readonly code: string | undefined;
  /** Worth retrying: the network, a timeout, 408, 429 or a 5xx. */
  readonly temporary: boolean;
  /** Seconds the server asked us to wait (Retry-After), when it said. */
  readonly retryAfter: number | undefined;

  constructor(message: string, options: { status?: number | undefined; code?: string | undefined; temporary: boolean; retryAfter?: number | undefined; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.code = options.code;
    this.temporary = options.temporary;
    this.retryAfter = options.retryAfter;
  }

  /** No response at all: refused, reset, timed out, DNS. */
  get unreachable(): boolean {
    return this.status === undefined;
  }
}

export function isUpstreamError(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError;
}

/** Statuses a later attempt may not get. 501 and 505 will not change. */
export function isTemporaryStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Network failure codes that will not heal by retrying: certificates, unknown hosts. */
const permanentNetworkCodes = new Set([
  'ENOTFOUND',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Turns what fetch threw (no response) into an UpstreamError. */
export function networkError(url: string, error: unknown): UpstreamError {
  const cause = (error as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const code = cause?.code ?? (error as { code?: string } | undefined)?.code;
  const reason = cause?.message ?? (error instanceof Error ? error.message : String(error));
  return new UpstreamError(`${displayUrl(url)}: ${reason}`, {
    temporary: code === undefined || !permanentNetworkCodes.has(code),
    cause: error,
  });
}

/** A URL without its query (upload locations carry state; presigned URLs carry secrets). */
export function displayUrl(url: string): string {
  const index = url.indexOf('?');
  return index === -1 ? url : url.slice(0, index);
}
