import { RegistryError } from '../errors/registry-error.ts';
import { tryParseDigest, type Digest } from './digest.ts';

declare const nameBrand: unique symbol;
declare const tagBrand: unique symbol;
/** A repository name that matches the spec's grammar. */
export type RepositoryName = string & { readonly [nameBrand]: true };
/** A tag that matches the spec's grammar. */
export type Tag = string & { readonly [tagBrand]: true };
/** A manifest reference: a tag or a digest. */
export type Reference = { kind: 'tag'; tag: Tag } | { kind: 'digest'; digest: Digest };

// distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*
const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const namePattern = new RegExp(`^${component}(?:/${component})*$`);
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/**
 * Clients put the registry host in front of the name and many reject more
 * than 255 characters in all; 255 for the name alone is what Distribution allows.
 */
export const maxRepositoryNameLength = 255;

export function parseRepositoryName(value: string): RepositoryName {
  if (value.length > maxRepositoryNameLength) {
    throw new RegistryError('NAME_INVALID', `repository name is longer than ${maxRepositoryNameLength} characters`, {
      detail: { name: `${value.slice(0, 64)}…`, length: value.length },
    });
  }
  if (!namePattern.test(value)) {
    throw new RegistryError('NAME_INVALID', 'invalid repository name: use lowercase letters and digits, separated by ".", "_", "__", "-" or "/"', { detail: { name: value } });
  }
  return value as RepositoryName;
}

export function isRepositoryName(value: string): value is RepositoryName {
  return value.length <= maxRepositoryNameLength && namePattern.test(value);
}

export function parseTag(value: string): Tag {
  if (!tagPattern.test(value)) {
    throw new RegistryError('TAG_INVALID', 'invalid tag: up to 128 of [A-Za-z0-9_.-], not starting with "." or "-"', {
      detail: { tag: value.slice(0, 200) },
      status: 400,
    });
  }
  return value as Tag;
}

export function isTag(value: string): value is Tag {
  return tagPattern.test(value);
}

/** Parses a manifest reference: a digest when it looks like one, a tag otherwise. */
export function parseReference(value: string): Reference {
  if (value.includes(':')) {
    const digest = tryParseDigest(value);
    if (digest === undefined) {
      throw new RegistryError('MANIFEST_INVALID', `invalid manifest reference "${value.slice(0, 200)}"`, {
        detail: { reference: value.slice(0, 200) },
      });
    }
    return { kind: 'digest', digest };
  }
  if (!isTag(value)) {
    throw new RegistryError('MANIFEST_INVALID', `invalid manifest reference "${value.slice(0, 200)}"`, {
      detail: { reference: value.slice(0, 200) },
    });
  }
  return { kind: 'tag', tag: value };
}

export function referenceToString(reference: Reference): string {
  return reference.kind === 'tag' ? reference.tag : reference.digest;
}
