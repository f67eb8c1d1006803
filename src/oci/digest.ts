import { createHash, type Hash } from 'node:crypto';
import { RegistryError } from '../errors/registry-error.ts';

export const digestAlgorithms = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof digestAlgorithms;

declare const digestBrand: unique symbol;
/** `algorithm:hex`, parsed and checked; only `parseDigest` and `digestOf` make one. */
export type Digest = string & { readonly [digestBrand]: true };

const digestPattern = /^(sha256|sha512):([a-f0-9]+)$/;

export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return Object.hasOwn(digestAlgorithms, value);
}

export function parseDigestAlgorithm(value: string): DigestAlgorithm {
  if (!isDigestAlgorithm(value)) {
    throw new RegistryError('DIGEST_INVALID', `unsupported digest algorithm "${value}"; use sha256 or sha512`);
  }
  return value;
}

export function parseDigest(value: string): Digest {
  const match = digestPattern.exec(value);
  const algorithm = match?.[1];
  const hex = match?.[2];
  if (algorithm === undefined || hex === undefined || !isDigestAlgorithm(algorithm)) {
    throw new RegistryError('DIGEST_INVALID', `invalid digest "${truncate(value)}"`, { detail: { digest: truncate(value) } });
  }
  if (hex.length !== digestAlgorithms[algorithm]) {
    throw new RegistryError('DIGEST_INVALID', `invalid ${algorithm} digest length`, { detail: { digest: value } });
  }
  return value as Digest;
}

export function tryParseDigest(value: string): Digest | undefined {
  try {
    return parseDigest(value);
  } catch {
    return undefined;
  }
}

export function algorithmOf(digest: Digest): DigestAlgorithm {
  return digest.slice(0, digest.indexOf(':')) as DigestAlgorithm;
}

export function hexOf(digest: Digest): string {
  return digest.slice(digest.indexOf(':') + 1);
}

export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}` as Digest;
}

export function finishDigest(hash: Hash, algorithm: DigestAlgorithm): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest;
}

function truncate(value: string): string {
  return value.length > 200 ? `${value.slice(0, 200)}…` : value;
}
