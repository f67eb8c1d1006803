import type { BlobStore, ByteRange } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { MetaStore, Page } from '../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../oci/accept.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { storedBlobBody } from './blob-body.ts';
import { getManifest } from './manifests.ts';
import type { BlobBody, ManifestContent, Repository } from './repository.ts';

/** Where a stored repository's content is. */
export interface StoredContent {
  meta: MetaStore;
  blobs: BlobStore;
  /** Whether blob GETs may answer 307 to the store's own URL. */
  redirects: boolean;
}

/**
 * The read side of a repository whose manifests, tags and blobs are in the
 * registry's MetaStore and BlobStore: hosted repositories, and what other
 * kinds store as ordinary content (a droplet prefix's rootfs images).
 */
export class StoredRepository implements Repository {
  readonly name: RepositoryName;
  readonly #content: StoredContent;

  constructor(name: RepositoryName, content: StoredContent) {
    this.name = name;
    this.#content = content;
  }

  manifest(reference: Reference, accept: MediaTypeAcceptance): Promise<ManifestContent> {
    return getManifest(this.#content.meta, this.name, reference, accept);
  }

  async blobSize(digest: Digest): Promise<number> {
    const size = await this.#content.meta.blobs.linkedSize(this.name, digest);
    if (size === undefined) throw blobUnknown(digest);
    return size;
  }

  openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody> {
    const { blobs, redirects } = this.#content;
    return storedBlobBody(blobs, digest, range, { redirects, signal });
  }

  async tags(page: Page): Promise<Tag[]> {
    // One page read from the tag index by key, whatever the list's length.
    const { meta } = this.#content;
    const tags = await meta.tags.list(this.name, page);
    if (tags.length === 0 && !(await meta.repositories.exists(this.name))) {
      throw new RegistryError('NAME_UNKNOWN', `repository ${this.name} is not known`, { detail: { name: this.name } });
    }
    return tags;
  }

  referrers(subject: Digest, artifactType: string | undefined, _signal?: AbortSignal, page?: Page): Promise<Descriptor[]> {
    return this.#content.meta.manifests.referrers(this.name, subject, artifactType, page);
  }
}

export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in this repository`, { detail: { digest } });
}
