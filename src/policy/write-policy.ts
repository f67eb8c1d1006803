import type { BlobGuard } from '../gc/blob-guard.ts';
import type { MetaStore } from '../meta/meta-store.ts';
import type { WritePolicy } from '../registry/write-policy.ts';
import type { ImmutableTags } from './immutable-tags.ts';
import type { Quotas } from './quotas.ts';

/**
 * The hosted write policy of a running registry: quotas and immutable tags
 * where configured, and garbage collection's protection of blobs linked
 * without being written (committed ones are protected by the guarded blob
 * store).
 */
export function operationsPolicy(parts: { quotas: Quotas; immutableTags: ImmutableTags; guard: BlobGuard; meta: MetaStore }): WritePolicy {
  const { quotas, immutableTags, guard, meta } = parts;
  const policy: WritePolicy = { protect: (digests) => guard.protect(digests) };
  if (quotas.configured) {
    policy.admitUpload = (repository) => quotas.admitUpload(repository);
    policy.admitBlob = (repository, digest, size) => quotas.admitBlob(repository, digest, size);
  }
  if (quotas.configured || immutableTags.configured) {
    policy.admitManifest = async (repository, manifest, tags) => {
      if (quotas.configured) {
        const stored = (await meta.manifests.get(repository, { kind: 'digest', digest: manifest.digest })) !== undefined;
        await quotas.admitManifest(repository, manifest.size, stored);
      }
      return immutableTags.configured ? { fixedTags: await immutableTags.admitManifest(repository, manifest.digest, tags) } : undefined;
    };
  }
  if (immutableTags.configured) policy.admitDelete = (repository, reference) => immutableTags.admitDelete(repository, reference);
  return policy;
}
