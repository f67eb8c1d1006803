import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { ManifestRecord } from './meta-store.ts';

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

/** What a manifest put answers when a reference is not in the repository. */
export function missingReference(kind: 'blob' | 'manifest', digest: Digest): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', `the manifest references ${kind} ${digest}, which is not in this repository`, {
    detail: { digest },
  });
}
