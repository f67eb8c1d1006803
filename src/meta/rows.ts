import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { ManifestRecord, PutOptions } from './meta-store.ts';

/**
 * Rows of the `manifests` table as both SQL drivers return them (same
 * column names); `content` is the driver's byte array.
 */
export type ManifestRow = Record<string, unknown>;

export function manifestRecordFromRow(row: ManifestRow): ManifestRecord {
  const record: ManifestRecord = {
    digest: row['digest'] as Digest,
    mediaType: row['media_type'] as string,
    bytes: row['content'] as Uint8Array,
  };
  if (row['subject'] !== null) record.subject = row['subject'] as Digest;
  if (row['artifact_type'] !== null) record.artifactType = row['artifact_type'] as string;
  if (row['annotations'] !== null) record.annotations = JSON.parse(row['annotations'] as string) as Record<string, string>;
  return record;
}

/** A referrers-listing descriptor from `digest, media_type, size, artifact_type, annotations`. */
export function referrerFromRow(row: ManifestRow): Descriptor {
  const descriptor: Descriptor = { mediaType: row['media_type'] as string, digest: row['digest'] as Digest, size: row['size'] as number };
  if (row['artifact_type'] !== null) descriptor.artifactType = row['artifact_type'] as string;
  if (row['annotations'] !== null) descriptor.annotations = JSON.parse(row['annotations'] as string) as Record<string, string>;
  return descriptor;
}

/** A manifest's reference: a blob (config, layer) or a child manifest (of an index). */
export interface ManifestReference {
  kind: 'blob' | 'manifest';
  digest: Digest;
}

/**
 * What a manifest put answers when references are not in the repository:
 * one MANIFEST_BLOB_UNKNOWN per missing digest, each naming it in `detail`,
 * as the spec asks ("an error is returned for each unknown blob"); undefined
 * when nothing is missing. The list is bounded by the manifest's size limit.
 */
export function missingReferences(missing: readonly ManifestReference[]): RegistryError | undefined {
  const [first, ...rest] = missing.map(
    ({ kind, digest }) => new RegistryError('MANIFEST_BLOB_UNKNOWN', `the manifest references ${kind} ${digest}, which is not in this repository`, { detail: { digest } }),
  );
  if (first === undefined) return undefined;
  return new RegistryError(first.code, first.message, { detail: first.detail, more: rest });
}

/** What a manifest put answers when it would move a tag that must not move. */
export function fixedTagMoved(tag: string, current: string): RegistryError {
  return new RegistryError('DENIED', `tag ${tag} is immutable here and already names ${current}`, { detail: { tag, digest: current } });
}

/** The fixed tags a put actually writes. */
export function fixedAmong<Tag extends string>(tags: readonly Tag[], options: PutOptions | undefined): Tag[] {
  const fixed = new Set<string>(options?.fixedTags ?? []);
  return tags.filter((tag) => fixed.has(tag));
}
