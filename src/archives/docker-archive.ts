import type { ManifestRecord } from '../meta/meta-store.ts';
import { digestOf, type Digest } from '../oci/digest.ts';
import { mediaTypes } from '../oci/media-types.ts';
import type { Tag } from '../oci/names.ts';
import { ArchiveFormatError, parseJsonFile, type ArchiveContents, type BlobLocation, type DescribedFile } from './archive-contents.ts';
import { tagOfImageName } from './image-names.ts';
import { normalizeEntryPath } from './tar-entries.ts';

const layerMediaTypes: Record<DescribedFile['compression'], string> = {
  none: mediaTypes.dockerLayerTar,
  gzip: mediaTypes.dockerLayerGzip,
  zstd: mediaTypes.dockerLayerZstd,
};

/** One image of manifest.json, its paths normalized. */
export interface DockerArchiveImage {
  config: string;
  repoTags: string[];
  layers: string[];
}

/**
 * Reads a Docker archive (`docker save`, `skopeo copy … docker-archive:`):
 * manifest.json lists images by config file, RepoTags and layer files. Each
 * image is served as a Docker schema 2 manifest built here; its digests are
 * computed over the exact bytes of each file, so layers (usually plain
 * tars) are described with the media type their first bytes show. The
 * manifest bytes are canonical, so indexing the same archive again gives
 * the same digest.
 */
export async function readDockerArchive(
  contents: ArchiveContents,
  maxManifestBytes: number,
): Promise<{
  tags: Map<Tag, Digest>;
  manifests: Map<Digest, ManifestRecord>;
  blobs: Map<Digest, BlobLocation>;
  /** Each image in manifest.json order, with the names it carries (for selecting by name or position). */
  images: { digest: Digest; names: string[] }[];
}> {
  const images = parseDockerArchiveImages(parseJsonFile(await contents.readFile('manifest.json', maxManifestBytes), 'manifest.json'));
  const tags = new Map<Tag, Digest>();
  const manifests = new Map<Digest, ManifestRecord>();
  const blobs = new Map<Digest, BlobLocation>();
  const listed: { digest: Digest; names: string[] }[] = [];
  for (const image of images) {
    const config = await contents.describeFile(image.config);
    const layers: DescribedFile[] = [];
    for (const path of image.layers) layers.push(await contents.describeFile(path));
    for (const file of [config, ...layers]) blobs.set(file.digest, file.location);
    const bytes = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.dockerManifest,
        config: { mediaType: mediaTypes.dockerConfig, size: config.size, digest: config.digest },
        layers: layers.map((layer) => ({ mediaType: layerMediaTypes[layer.compression], size: layer.size, digest: layer.digest })),
      }),
    );
    const digest = digestOf(bytes);
    manifests.set(digest, { digest, mediaType: mediaTypes.dockerManifest, bytes, artifactType: mediaTypes.dockerConfig });
    listed.push({ digest, names: image.repoTags });
    for (const name of image.repoTags) {
      const tag = tagOfImageName(name);
      if (tag !== undefined && !tags.has(tag)) tags.set(tag, digest);
    }
  }
  return { tags, manifests, blobs, images: listed };
}

/** The images manifest.json lists; ArchiveFormatError when it is not what `docker save` writes. */
export function parseDockerArchiveImages(value: unknown): DockerArchiveImage[] {
  if (!Array.isArray(value)) throw new ArchiveFormatError('manifest.json is not a JSON array');
  return value.map((entry: unknown, position) => {
    const where = `manifest.json[${position}]`;
    if (typeof entry !== 'object' || entry === null) throw new ArchiveFormatError(`${where} is not an object`);
    const { Config: config, RepoTags: repoTags, Layers: layers } = entry as Record<string, unknown>;
    if (typeof config !== 'string') throw new ArchiveFormatError(`${where}.Config must name the config file`);
    if (!isStringArray(layers)) throw new ArchiveFormatError(`${where}.Layers must list the layer files`);
    if (repoTags !== null && repoTags !== undefined && !isStringArray(repoTags)) throw new ArchiveFormatError(`${where}.RepoTags must be a list of names`);
    return { config: normalize(config), repoTags: repoTags ?? [], layers: layers.map(normalize) };
  });
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

/** manifest.json names files relative to the archive root, sometimes with "./". */
function normalize(path: string): string {
  return normalizeEntryPath(path) ?? path;
}
