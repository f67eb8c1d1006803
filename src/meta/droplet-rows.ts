import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { Composition, Conversion, RecordImage, RootfsEntry, RootfsImage, StagedDroplet } from './droplet-store.ts';

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

/** A manifest to store with the blobs it references and the tags that name it. */
export interface StoredImage {
  repository: RepositoryName;
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  blobs: readonly { digest: Digest; size: number }[];
  tags: readonly string[];
}

/** The artifact that keeps a droplet's layer linked while the droplet is kept. */
export function recordImage(record: RecordImage, droplet: StagedDroplet): StoredImage {
  return { ...record, blobs: [record.config, droplet.layer], tags: [record.tag] };
}

/** A rootfs as a pullable image: `latest` while current, and its layer's hex digest. */
export function rootfsImage(image: RootfsImage, rootfs: { digest: Digest; size: number }): StoredImage {
  return { ...image, blobs: [image.config, rootfs], tags: ['latest', rootfsTag(rootfs.digest)] };
}

/** A composed image as a manifest of its app repository, `tag` naming it. */
export function compositionImage(composition: Composition, tag: string): StoredImage {
  const { repository, digest, mediaType, bytes } = composition;
  return { repository, digest, mediaType, bytes, blobs: [composition.config, composition.rootfs, composition.dropletLayer], tags: [tag] };
}

/** The columns of a `droplet_compositions` row, and their values for `composition` in that order. */
export const compositionColumns = 'source, repository, digest, app, guid, rootfs_digest, config_digest, config_size, droplet_layer, droplet_layer_size, droplet_diff_id';

export function compositionValues(source: string, composition: Composition): (string | number)[] {
  const { config, rootfs, dropletLayer } = composition;
  return [
    source,
    composition.repository,
    composition.digest,
    composition.app,
    composition.dropletGuid,
    rootfs.digest,
    config.digest,
    config.size,
    dropletLayer.digest,
    dropletLayer.size,
    dropletLayer.diffId,
  ];
}
