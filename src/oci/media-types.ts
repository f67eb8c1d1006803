export const mediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociLayerNondistributableTar: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** Uncompressed layers, as `docker save` writes them; containerd and Docker pull them. */
  dockerLayerTar: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  dockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

/** The manifest media types Berth stores and serves. */
export const manifestMediaTypes = [mediaTypes.ociManifest, mediaTypes.ociIndex, mediaTypes.dockerManifest, mediaTypes.dockerManifestList] as const;
export type ManifestMediaType = (typeof manifestMediaTypes)[number];

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return (manifestMediaTypes as readonly string[]).includes(value);
}

export function isIndexMediaType(value: ManifestMediaType): boolean {
  return value === mediaTypes.ociIndex || value === mediaTypes.dockerManifestList;
}

/**
 * Layers that registries do not hold: their bytes live at `urls`, so a
 * manifest may reference them without the blob being pushed.
 */
export function isForeignLayer(mediaType: string): boolean {
  return mediaType === mediaTypes.dockerForeignLayer || mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.');
}
