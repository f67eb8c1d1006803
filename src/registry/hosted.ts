import type { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { MetaStore, Page } from '../meta/meta-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { withChange, type ChangeLog } from '../meta/change-log.ts';
import { manifestUnknown, putManifest } from './manifests.ts';
import { blobUnknown, StoredRepository } from './stored-repository.ts';
import type { ChunkBounds, PutManifestResult, Repository, RepositorySource, RepositoryWriter, UploadState } from './repository.ts';
import { Uploads } from './uploads.ts';
import type { WritePolicy } from './write-policy.ts';

export interface HostedOptions {
  /** Whether DELETE of manifests, tags and blobs is allowed. */
  deletes: boolean;
  /** Whether blob GETs may answer 307 to the store's own URL. */
  redirects: boolean;
  /** The largest blob an upload may hold; unset, no limit. */
  maxBlobBytes?: number;
}

/** Everything a hosted repository works with; shared by all of them. */
export interface HostedContext {
  blobs: BlobStore;
  meta: MetaStore;
  uploads: Uploads;
  options: HostedOptions;
  /** Quotas, immutable tags and garbage collection's protection; absent, every write is admitted. */
  policy?: WritePolicy;
  /** Events committed with each change; absent, none are recorded. */
  changes?: ChangeLog;
}

export function createHostedContext(blobs: BlobStore, meta: MetaStore, options: HostedOptions, policy?: WritePolicy, changes?: ChangeLog): HostedContext {
  const uploadOptions = {
    ...(options.maxBlobBytes === undefined ? {} : { maxBlobBytes: options.maxBlobBytes }),
    ...(policy === undefined ? {} : { policy }),
  };
  const context: HostedContext = { blobs, meta, uploads: new Uploads(blobs, meta, uploadOptions), options };
  if (policy !== undefined) context.policy = policy;
  if (changes !== undefined) context.changes = changes;
  return context;
}

/** Read-write repositories stored in the registry's own BlobStore and MetaStore. */
export class HostedSource implements RepositorySource {
  readonly #context: HostedContext;

  constructor(context: HostedContext) {
    this.#context = context;
  }

  async open(name: RepositoryName): Promise<Repository> {
    return new HostedRepository(name, this.#context);
  }

  async catalog(page: Page): Promise<RepositoryName[]> {
    return this.#context.meta.repositories.list(page);
  }
}

export class HostedRepository extends StoredRepository implements RepositoryWriter {
  readonly writer: RepositoryWriter = this;
  readonly #context: HostedContext;

  constructor(name: RepositoryName, context: HostedContext) {
    super(name, { meta: context.meta, blobs: context.blobs, redirects: context.options.redirects });
    this.#context = context;
  }

  startUpload(owner?: string): Promise<UploadState> {
    return this.#context.uploads.start(this.name, owner);
  }

  uploadStatus(id: string): Promise<UploadState> {
    return this.#context.uploads.status(this.name, id);
  }

  appendUpload(id: string, body: Readable, bounds: ChunkBounds, signal?: AbortSignal): Promise<UploadState> {
    return this.#context.uploads.append(this.name, id, body, bounds, signal);
  }

  finishUpload(id: string, digest: Digest, body: Readable | undefined, bounds: ChunkBounds, signal?: AbortSignal): Promise<number> {
    return this.#context.uploads.finish(this.name, id, digest, body, bounds, signal);
  }

  cancelUpload(id: string): Promise<void> {
    return this.#context.uploads.cancel(this.name, id);
  }

  async mountBlob(digest: Digest, from: RepositoryName | ((name: RepositoryName) => boolean)): Promise<boolean> {
    if (typeof from === 'function') {
      // The first repositories linking the blob are enough: one readable source is all a mount needs.
      for (const source of await this.#context.meta.blobs.linkedIn(digest, 100)) {
        if (from(source) && (await this.mountBlob(digest, source))) return true;
      }
      return false;
    }
    const { meta, policy } = this.#context;
    const size = await meta.blobs.linkedSize(from, digest);
    if (size === undefined) return false;
    await policy?.admitBlob?.(this.name, digest, size);
    if (policy?.protect !== undefined) {
      await policy.protect([digest]);
      // Collection keeps off the blob from here on; it may have gone just before.
      if ((await meta.blobs.linkedSize(from, digest)) === undefined) return false;
    }
    await meta.blobs.link(this.name, digest, size);
    return true;
  }

  putManifest(reference: Reference, bytes: Uint8Array, contentType: string | undefined, extraTags: readonly Tag[]): Promise<PutManifestResult> {
    const { meta, policy, changes } = this.#context;
    return putManifest(meta, this.name, reference, bytes, contentType, extraTags, policy, changes);
  }

  async deleteManifest(reference: Reference): Promise<void> {
    this.#checkDeletes();
    const { meta, policy, changes } = this.#context;
    await policy?.admitDelete?.(this.name, reference);
    const { name } = this;
    const removed =
      reference.kind === 'tag'
        ? await withChange(
            changes,
            { kind: 'tag-deleted', repository: name, tag: reference.tag, reason: 'api' },
            (options) => meta.tags.delete(name, reference.tag, options),
            isTrue,
          )
        : await withChange(
            changes,
            { kind: 'manifest-deleted', repository: name, digest: reference.digest, reason: 'api' },
            (options) => meta.manifests.delete(name, reference.digest, options),
            isTrue,
          );
    if (!removed) throw manifestUnknown(reference);
  }

  async deleteBlob(digest: Digest): Promise<void> {
    this.#checkDeletes();
    const { meta, changes } = this.#context;
    const change = { kind: 'blob-deleted', repository: this.name, digest, reason: 'api' } as const;
    if (!(await withChange(changes, change, (options) => meta.blobs.unlink(this.name, digest, options), isTrue))) throw blobUnknown(digest);
  }

  #checkDeletes(): void {
    if (!this.#context.options.deletes) {
      throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (registry.deletes: false)');
    }
  }
}

const isTrue = (removed: boolean) => removed;
