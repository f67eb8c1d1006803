import { isRegistryError } from '../errors/registry-error.ts';
import { isUpstreamError } from '../client/errors.ts';
import { LocationError } from './location.ts';

/**
 * What `berth copy` and `berth sync` exit with. 0–3 are shared by every
 * command (src/cli/main.ts); these add what a script deciding whether to
 * retry needs to know.
 */
export const copyExitCodes = {
  ok: 0,
  /** Anything else: network down after retries, a registry's 5xx, local I/O. Retrying may help. */
  failure: 1,
  usage: 2,
  config: 3,
  /** The source image, tag, repository or a blob does not exist. */
  notFound: 4,
  /** Credentials missing or refused (401/403). */
  auth: 5,
  /** Content did not match its digest or size: a corrupt source or a tampering transport. */
  integrity: 6,
  /** sync: some images were copied, others failed (see the events). */
  partial: 7,
  /** Interrupted (SIGINT/SIGTERM); re-running resumes. */
  interrupted: 130,
} as const;

/** The exit code and the OCI-style code a failure reports. */
export function classifyFailure(error: unknown): { exitCode: number; code: string } {
  if (error instanceof LocationError) return { exitCode: copyExitCodes.usage, code: 'USAGE' };
  if ((error as { name?: string } | undefined)?.name === 'AbortError') return { exitCode: copyExitCodes.interrupted, code: 'INTERRUPTED' };
  const code = isRegistryError(error) ? error.code : isUpstreamError(error) ? (error.code ?? statusCode(error.status)) : 'UNKNOWN';
  // A 404 without the spec's error body (a proxy's page, say) is still "not found"; its code stays a spec code.
  if (isUpstreamError(error) && error.code === undefined && error.status === 404) return { exitCode: copyExitCodes.notFound, code };
  switch (code) {
    case 'MANIFEST_UNKNOWN':
    case 'NAME_UNKNOWN':
    case 'BLOB_UNKNOWN':
      return { exitCode: copyExitCodes.notFound, code };
    case 'UNAUTHORIZED':
    case 'DENIED':
      return { exitCode: copyExitCodes.auth, code };
    case 'DIGEST_INVALID':
    case 'SIZE_INVALID':
      return { exitCode: copyExitCodes.integrity, code };
    default:
      return { exitCode: copyExitCodes.failure, code };
  }
}

function statusCode(status: number | undefined): string {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  return 'UNKNOWN';
}
