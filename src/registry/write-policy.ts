import type { Digest } from '../oci/digest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';

/** A manifest about to be stored, as a policy sees it. */
export interface ManifestCandidate {
  digest: Digest;
  mediaType: string;
  /** Bytes of the manifest itself. */
  size: number;
}

export interface ManifestAdmission {
  /** Tags the store must refuse to move, checked again inside the write (two pushes racing for an immutable tag). */
  fixedTags?: readonly Tag[];
}

/**
 * What the operator allows on hosted repositories (quotas, immutable tags),
 * consulted around the write path. Every member is optional; a refusal
 * throws RegistryError DENIED with a message naming the rule.
 */
export interface WritePolicy {
  /** Before an upload session starts (refuse early what cannot finish). */
  admitUpload?(repository: RepositoryName): Promise<void>;
  /** Before a blob becomes readable in `repository`: an upload about to be committed, or a mount about to be linked. */
  admitBlob?(repository: RepositoryName, digest: Digest, size: number): Promise<void>;
  /**
   * Keeps garbage collection off blobs that are about to be linked without
   * being written (mounts, caches linking what is already stored). Waits
   * while one is being deleted: check afterwards that it is still stored.
   */
  protect?(digests: readonly Digest[]): Promise<void>;
  /** Before a manifest is stored with `tags`. */
  admitManifest?(repository: RepositoryName, manifest: ManifestCandidate, tags: readonly Tag[]): Promise<ManifestAdmission | undefined>;
  /** Before a tag, or a manifest by digest (with its tags), is deleted. */
  admitDelete?(repository: RepositoryName, reference: Reference): Promise<void>;
}
