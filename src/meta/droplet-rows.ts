import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { Composition, Conversion, RootfsEntry, StagedDroplet } from './droplet-store.ts';

/**
 * Rows of the droplet tables as both SQL drivers return them (same column
 * names); times are converted by `time` (milliseconds in SQLite, Date in
 * PostgreSQL), sizes are numbers in both.
 */
type Row = Record<string, unknown>;

export function toMillis(value: unknown): number {
  return value instanceof Date ? value.getTime() : Number(value);
}

export function conversionFromRow(row: Row): Conversion {
  return {
    dropletDigest: row['droplet_digest'] as Digest,
    layer: { digest: row['layer_digest'] as Digest, size: Number(row['layer_size']), diffId: row['diff_id'] as Digest },
    processTypes: JSON.parse(row['process_types'] as string) as Record<string, string>,
  };
}

export function stagedDropletFromRow(row: Row): StagedDroplet {
  return { ...conversionFromRow(row), guid: row['guid'] as string, stagedAt: new Date(toMillis(row['staged_at'])) };
}

export function rootfsFromRow(row: Row): RootfsEntry {
  const entry: RootfsEntry = {
    digest: row['layer_digest'] as Digest,
    size: Number(row['layer_size']),
    diffId: row['diff_id'] as Digest,
    origin: row['origin'] as string,
    importedAt: new Date(toMillis(row['imported_at'])),
  };
  if (row['expires_at'] !== null && row['expires_at'] !== undefined) entry.expiresAt = new Date(toMillis(row['expires_at']));
  return entry;
}

/** A composition row joined with its manifest (`content`, `media_type`) and its rootfs (`rootfs_size`, `rootfs_diff_id`). */
export function compositionFromRow(row: Row): Composition {
  return {
    repository: row['repository'] as RepositoryName,
    app: row['app'] as string,
    dropletGuid: row['guid'] as string,
    digest: row['digest'] as Digest,
    mediaType: row['media_type'] as string,
    bytes: row['content'] as Uint8Array,
    config: { digest: row['config_digest'] as Digest, size: Number(row['config_size']) },
    rootfs: { digest: row['rootfs_digest'] as Digest, size: Number(row['rootfs_size']), diffId: row['rootfs_diff_id'] as Digest },
    dropletLayer: { digest: row['droplet_layer'] as Digest, size: Number(row['droplet_layer_size']), diffId: row['droplet_diff_id'] as Digest },
  };
}

/** The tag under which a rootfs image stays reachable while it is kept: its layer's hex digest. */
export function rootfsTag(layer: Digest): string {
  return layer.slice(layer.indexOf(':') + 1);
}
