import { RegistryError } from '../errors/registry-error.ts';
import type { ManifestRecord, MetaStore } from '../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../oci/accept.ts';
import { algorithmOf, digestOf, type Digest } from '../oci/digest.ts';
import { parseManifest } from '../oci/manifest.ts';
import { isIndexMediaType, isManifestMediaType } from '../oci/media-types.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { withChange, type ChangeLog } from '../meta/change-log.ts';
import type { ManifestContent, PutManifestResult } from './repository.ts';
import type { WritePolicy } from './write-policy.ts';
import { checkDigest } from '../io/digest-check.ts';

/** The spec's recommended limit; above it a push gets 413. */
export const defaultMaxManifestBytes = 4 * 1024 * 1024;

/** The platform served to clients that ask for a tag holding an index but accept no index type. */
const defaultPlatform = { os: 'linux', architecture: 'amd64' };

/**
 * Validates a pushed manifest and stores it with its tags. A digest
 * reference must match the bytes; tag pushes are addressed by sha256.
 */
export async function putManifest(
  meta: MetaStore,
  repository: RepositoryName,
  reference: Reference,
  bytes: Uint8Array,
  contentType: string | undefined,
  extraTags: readonly Tag[],
  policy?: WritePolicy,
  changes?: ChangeLog,
): Promise<PutManifestResult> {
  const parsed = parseManifest(bytes, contentType);
  let digest: Digest;
  if (reference.kind === 'digest') {
    digest = digestOf(bytes, algorithmOf(reference.digest));
    checkDigest(reference.digest, digest, (actual) => `manifest digest is ${actual}, not ${reference.digest}`);
  } else {
    digest = digestOf(bytes);
  }
  const record: ManifestRecord = { digest, mediaType: parsed.mediaType, bytes };
  if (parsed.subject !== undefined) record.subject = parsed.subject;
  if (parsed.artifactType !== undefined) record.artifactType = parsed.artifactType;
  if (parsed.annotations !== undefined) record.annotations = parsed.annotations;
  const tags = [...new Set(reference.kind === 'tag' ? [reference.tag, ...extraTags] : extraTags)];
  const admission = await policy?.admitManifest?.(repository, { digest, mediaType: parsed.mediaType, size: bytes.byteLength }, tags);
  const fixedTags = admission?.fixedTags ?? [];
  const pushed = { kind: 'manifest-pushed', repository, digest, mediaType: parsed.mediaType, size: bytes.byteLength, tags } as const;
  await withChange(
    changes,
    pushed,
    (events) => meta.manifests.put(repository, record, parsed, tags, { ...(fixedTags.length === 0 ? {} : { fixedTags }), ...events }),
    () => true,
  );
  return parsed.subject === undefined ? { digest } : { digest, subject: parsed.subject };
}

/**
 * Finds a manifest and negotiates its media type. A digest pins the
 * content, so it is served as stored; a tag holding an index, asked for by
 * a client that accepts no index type, resolves to the linux/amd64 child.
 */
export async function getManifest(meta: MetaStore, repository: RepositoryName, reference: Reference, accept: MediaTypeAcceptance): Promise<ManifestContent> {
  const record = await meta.manifests.get(repository, reference);
  if (record === undefined) throw manifestUnknown(reference);
  return negotiateManifest(record, reference, accept, (child) => meta.manifests.get(repository, { kind: 'digest', digest: child }));
}

/**
 * Serves a found manifest in a media type the client accepts; shared by
 * every repository kind. `child` looks up another manifest of the same
 * repository by digest (the platform child of an index).
 */
export async function negotiateManifest(
  record: ManifestRecord,
  reference: Reference,
  accept: MediaTypeAcceptance,
  child: (digest: Digest) => Promise<ManifestRecord | undefined>,
): Promise<ManifestContent> {
  if (reference.kind === 'digest' || accept.accepts(record.mediaType)) return toContent(record);
  if (isManifestMediaType(record.mediaType) && isIndexMediaType(record.mediaType)) {
    const childDigest = platformChild(record.bytes);
    if (childDigest !== undefined) {
      const childRecord = await child(childDigest);
      if (childRecord !== undefined && accept.accepts(childRecord.mediaType)) return toContent(childRecord);
    }
  }
  throw new RegistryError('MANIFEST_UNKNOWN', `the manifest is ${record.mediaType}, which the request's Accept header does not include`, {
    detail: { mediaType: record.mediaType, accepted: accept.named },
  });
}

export function manifestUnknown(reference: Reference): RegistryError {
  const value = reference.kind === 'tag' ? reference.tag : reference.digest;
  return new RegistryError('MANIFEST_UNKNOWN', `manifest ${value} is not in this repository`, { detail: { reference: value } });
}

function toContent(record: ManifestRecord): ManifestContent {
  const content: ManifestContent = { digest: record.digest, mediaType: record.mediaType, bytes: record.bytes };
  if (record.subject !== undefined) content.subject = record.subject;
  return content;
}

/** The linux/amd64 entry of an index: what clients that accept no index type are served. */
export function platformChild(bytes: Uint8Array): Digest | undefined {
  const index = JSON.parse(Buffer.from(bytes).toString('utf8')) as {
    manifests?: { digest?: string; platform?: { os?: string; architecture?: string } }[];
  };
  const match = index.manifests?.find((entry) => entry.platform?.os === defaultPlatform.os && entry.platform.architecture === defaultPlatform.architecture);
  return match?.digest as Digest | undefined;
}
