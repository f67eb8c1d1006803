import type { RepositoryContents } from '../../meta/operations-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName, Tag } from '../../oci/names.ts';

/** A whole image as eviction sees it: a top manifest with its children and referrers, and when it was last used. */
export interface CachedImage {
  repository: RepositoryName;
  root: Digest;
  /** Tags naming the image's manifests (the root's, and cosign's tags of its signatures). */
  tags: { tag: Tag; digest: Digest }[];
  /** The root first, then children and referrers (each after what it hangs from). */
  members: Digest[];
  lastUsed: number;
}

/**
 * The images of one repository: each manifest that no index lists and that
 * refers to nothing present is the top of one, and takes along its
 * children and whatever refers to them (signatures travel with their
 * image). An image was last used when any of its manifests was last
 * pulled, its tag last moved, or it was cached.
 */
export function imagesOf(repository: RepositoryName, contents: RepositoryContents, pulls: ReadonlyMap<Digest, Date>): CachedImage[] {
  const present = new Map(contents.manifests.map((manifest) => [manifest.digest, manifest]));
  const listed = new Set(contents.manifests.flatMap((manifest) => manifest.children));
  const referrers = new Map<Digest, Digest[]>();
  for (const manifest of contents.manifests) {
    if (manifest.subject !== undefined && present.has(manifest.subject)) referrers.set(manifest.subject, [...(referrers.get(manifest.subject) ?? []), manifest.digest]);
  }
  const tagsOf = new Map<Digest, { tag: Tag; updatedAt: Date }[]>();
  for (const tag of contents.tags) tagsOf.set(tag.digest, [...(tagsOf.get(tag.digest) ?? []), tag]);
  // cosign's `sha256-<hex>.sig` names a signature of sha256:<hex>: it goes with that image.
  const cosignOf = new Map<Digest, Digest>();
  for (const tag of contents.tags) {
    const subject = cosignSubject(tag.tag);
    if (subject === undefined || !present.has(subject) || subject === tag.digest) continue;
    cosignOf.set(tag.digest, subject);
    referrers.set(subject, [...(referrers.get(subject) ?? []), tag.digest]);
  }
  const images: CachedImage[] = [];
  for (const manifest of contents.manifests) {
    if (listed.has(manifest.digest) || (manifest.subject !== undefined && present.has(manifest.subject)) || cosignOf.has(manifest.digest)) continue;
    const members: Digest[] = [];
    const seen = new Set<Digest>();
    const queue: Digest[] = [manifest.digest];
    while (queue.length > 0) {
      const digest = queue.shift() as Digest;
      if (seen.has(digest) || !present.has(digest)) continue;
      seen.add(digest);
      members.push(digest);
      queue.push(...(present.get(digest)?.children ?? []), ...(referrers.get(digest) ?? []));
    }
    let lastUsed = manifest.createdAt.getTime();
    for (const member of members) lastUsed = Math.max(lastUsed, pulls.get(member)?.getTime() ?? 0);
    for (const tag of tagsOf.get(manifest.digest) ?? []) lastUsed = Math.max(lastUsed, tag.updatedAt.getTime());
    const tags = members.flatMap((digest) => (tagsOf.get(digest) ?? []).map(({ tag }) => ({ tag, digest })));
    images.push({ repository, root: manifest.digest, tags, members, lastUsed });
  }
  return images;
}

/** Least recently used first. */
export function leastRecentlyUsed(images: CachedImage[]): CachedImage[] {
  return images.sort((a, b) => a.lastUsed - b.lastUsed || (a.repository < b.repository ? -1 : a.repository > b.repository ? 1 : 0));
}

function cosignSubject(tag: Tag): Digest | undefined {
  const match = /^(sha256|sha512)-([a-f0-9]{64,128})\.(sig|att|sbom)$/.exec(tag);
  return match === null ? undefined : (`${match[1]}:${match[2]}` as Digest);
}
