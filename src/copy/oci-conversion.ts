import { digestOf } from '../oci/digest.ts';
import { mediaTypes } from '../oci/media-types.ts';
import type { ManifestData } from './image-store.ts';

/** The OCI media type of a Docker schema 2 layer (or config); other types are returned as they are. */
export function ociEquivalent(mediaType: string): string {
  switch (mediaType) {
    case mediaTypes.dockerLayerGzip:
      return mediaTypes.ociLayerGzip;
    case mediaTypes.dockerForeignLayer:
      return mediaTypes.ociLayerNondistributableGzip;
    case mediaTypes.dockerLayerTar:
      return mediaTypes.ociLayerTar;
    case mediaTypes.dockerLayerZstd:
      return mediaTypes.ociLayerZstd;
    case mediaTypes.dockerConfig:
      return mediaTypes.ociConfig;
    default:
      return mediaType;
  }
}

/**
 * A Docker schema 2 image manifest as an OCI one, the way skopeo converts
 * it: the manifest's, config's and layers' media types change, every
 * digest (config and layers) stays, and so do the other fields and their
 * order. Deterministic, so `sync` can tell what a copy would write.
 */
export function dockerToOciManifest(data: ManifestData): ManifestData {
  const json = JSON.parse(Buffer.from(data.bytes).toString('utf8')) as { config: { mediaType: string }; layers: { mediaType: string }[] };
  return serialize(
    {
      ...json,
      mediaType: mediaTypes.ociManifest,
      config: { ...json.config, mediaType: ociEquivalent(json.config.mediaType) },
      layers: json.layers.map((layer) => ({ ...layer, mediaType: ociEquivalent(layer.mediaType) })),
    },
    mediaTypes.ociManifest,
  );
}

export function serialize(value: unknown, mediaType: string): ManifestData {
  const bytes = Buffer.from(JSON.stringify(value));
  return { digest: digestOf(bytes), mediaType, bytes };
}
