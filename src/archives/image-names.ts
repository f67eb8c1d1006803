import { isTag, type Tag } from '../oci/names.ts';

/**
 * The tag an archive gives an image. OCI layouts should carry a bare tag
 * ("1.0") in org.opencontainers.image.ref.name, but tools also write full
 * names ("docker.io/library/nginx:1.0", Docker's RepoTags); the tag is the
 * part after the last colon that follows the last slash. The repository
 * part is ignored: where the archive lies decides the repository name.
 */
export function tagOfImageName(value: string | undefined): Tag | undefined {
  if (value === undefined) return undefined;
  const withoutDigest = value.split('@')[0] ?? '';
  if (isTag(withoutDigest)) return withoutDigest;
  const colon = withoutDigest.lastIndexOf(':');
  if (colon <= withoutDigest.lastIndexOf('/')) return undefined;
  const tag = withoutDigest.slice(colon + 1);
  return isTag(tag) ? tag : undefined;
}
