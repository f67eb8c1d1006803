import type { ManifestRecord } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import { parseManifest, type Descriptor } from '../../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import type { ProxyState } from './proxy-state.ts';

/** What caching an artifact needs of a proxy repository. */
export interface ArtifactCache {
  readonly name: RepositoryName;
  readonly upstreamName: RepositoryName;
  cacheManifest(reference: Reference): Promise<ManifestRecord>;
  cacheBlob(digest: Digest): Promise<void>;
}

/** The tag suffixes of cosign's tag scheme: signatures, attestations, SBOMs. */
const cosignSuffixes = ['sig', 'att', 'sbom'] as const;

/** Referrers of referrers (a signed SBOM) are followed this deep. */
const maxDepth = 2;

/** `sha256-<hex>.sig` and its kin: where cosign keeps what refers to a manifest when a registry has no referrers API. */
export function cosignTags(subject: Digest): Tag[] {
  const [algorithm, hex] = subject.split(':');
  return cosignSuffixes.map((suffix) => `${algorithm}-${hex}.${suffix}` as Tag);
}

export function isCosignTag(tag: string): boolean {
  return /^[a-z0-9]+-[a-f0-9]{32,}\.(sig|att|sbom)$/.test(tag);
}

/**
 * Caches what refers to `subject` upstream, with its blobs, so that
 * signatures verify while the upstream is down: the referrers API's list,
 * or, when the upstream has no such API, cosign's tags. Resolves to the
 * number of artifacts cached.
 */
export async function cacheReferrers(cache: ArtifactCache, state: ProxyState, subject: Digest, depth = 0): Promise<number> {
  if (state.holdBack() !== undefined) return 0;
  const listed = await state.client.referrers(cache.upstreamName, subject, undefined, state.signal);
  if (listed !== undefined) {
    let cached = await cacheListedReferrers(cache, listed);
    if (depth + 1 < maxDepth) for (const descriptor of listed) cached += await cacheReferrers(cache, state, descriptor.digest, depth + 1);
    return cached;
  }
  let cached = 0;
  for (const tag of cosignTags(subject)) {
    const head = await state.client.headManifest(cache.upstreamName, { kind: 'tag', tag }, state.signal);
    if (head === undefined) continue;
    await cacheArtifact(cache, await cache.cacheManifest({ kind: 'tag', tag }));
    cached += 1;
  }
  return cached;
}

/** Caches referrers the upstream listed (and their blobs). */
export async function cacheListedReferrers(cache: ArtifactCache, listed: readonly Descriptor[]): Promise<number> {
  for (const descriptor of listed) await cacheArtifact(cache, await cache.cacheManifest({ kind: 'digest', digest: descriptor.digest }));
  return listed.length;
}

/** A manifest's blobs, and an index's children with theirs. */
async function cacheArtifact(cache: ArtifactCache, record: ManifestRecord, depth = 0): Promise<void> {
  const parsed = parseManifest(record.bytes, record.mediaType);
  for (const blob of parsed.blobs) await cache.cacheBlob(blob);
  if (depth >= maxDepth) return;
  for (const child of parsed.children) await cacheArtifact(cache, await cache.cacheManifest({ kind: 'digest', digest: child }), depth + 1);
}
