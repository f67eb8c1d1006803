import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';

/**
 * Throws DIGEST_INVALID (with both digests in its detail) unless content
 * that hashed to `actual` is the `expected` content. `message` says, for
 * the log and the client, what was checked.
 */
export function checkDigest(expected: Digest, actual: Digest, message: (actual: Digest) => string): void {
  if (actual === expected) return;
  throw new RegistryError('DIGEST_INVALID', message(actual), { detail: { expected, actual } });
}
