// The one error type of Berth. Every failure a client should see is a
// RegistryError carrying an OCI error code; the HTTP layer has exactly one
// place that turns it into the spec's JSON body.

/** The error codes of the OCI Distribution Spec, with their default status. */
export const errorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  // 400 as in Distribution and the conformance suite: the manifest is what is wrong, not the URL.
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  // Not in the OCI table, but what CNCF Distribution answers for these cases;
  // clients already know them. Everything else a client sees uses a code of
  // the table, with the finer reason in message and detail.
  TAG_INVALID: { status: 400, message: 'manifest tag did not match URI' },
  UNKNOWN: { status: 500, message: 'unknown error' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof errorCodes;

export interface RegistryErrorOptions {
  /** Overrides the code's default HTTP status (for example 416 or 413). */
  status?: number;
  /** Structured detail returned to the client in `detail`. */
  detail?: unknown;
  /** Extra response headers (for example `Range` on a 416 of an upload). */
  headers?: Record<string, string>;
  /** Further errors of the same response, listed after this one in the body (one per unknown blob of a manifest). */
  more?: readonly RegistryError[];
  cause?: unknown;
}

export class RegistryError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly detail: unknown;
  readonly headers: Record<string, string>;
  readonly more: readonly RegistryError[];

  constructor(code: ErrorCode, message?: string, options: RegistryErrorOptions = {}) {
    super(message ?? errorCodes[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status ?? errorCodes[code].status;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
    this.more = options.more ?? [];
  }
}

export function isRegistryError(error: unknown): error is RegistryError {
  return error instanceof RegistryError;
}
