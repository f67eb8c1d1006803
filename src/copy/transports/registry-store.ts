import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { isUpstreamError } from '../../client/errors.ts';
import type { RegistryClient } from '../../client/registry-client.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import type { Digest } from '../../oci/digest.ts';
import {
  cosignTagsOf,
  manifestNotFound,
  type ReferrerRef,
  type BlobOpener,
  type ImageStore,
  type ManifestData,
  type PutBlobOptions,
  type PutManifestOptions,
} from '../image-store.ts';

const latest = { kind: 'tag', tag: 'latest' as Tag } as const;

/** A repository in a registry, through the registry client (`docker://`). */
export class RegistryStore implements ImageStore {
  readonly description: string;
  readonly client: RegistryClient;
  readonly repository: RepositoryName;
  readonly #chunkSize: number | undefined;

  constructor(client: RegistryClient, repository: RepositoryName, options: { chunkSize?: number } = {}) {
    this.client = client;
    this.repository = repository;
    this.#chunkSize = options.chunkSize;
    this.description = `docker://${client.host}/${repository}`;
  }

  async getManifest(reference: Reference | undefined, signal?: AbortSignal): Promise<ManifestData> {
    try {
      return await this.client.getManifest(this.repository, reference ?? latest, signal);
    } catch (error) {
      if (isUpstreamError(error) && (error.status === 404 || error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN')) {
        throw manifestNotFound(this.description, reference ?? latest);
      }
      throw error;
    }
  }

  async openBlob(descriptor: Descriptor, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    return (await this.client.openBlob(this.repository, descriptor.digest, range, { signal })).stream;
  }

  listTags(signal?: AbortSignal): Promise<Tag[]> {
    return this.client.allTags(this.repository, signal);
  }

  async hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean> {
    const size = await this.client.statBlob(this.repository, descriptor.digest, signal);
    return size !== undefined;
  }

  async putBlob(descriptor: Descriptor, open: BlobOpener, options: PutBlobOptions = {}): Promise<'copied' | 'mounted'> {
    const outcome = await this.client.uploadBlob(this.repository, descriptor, open, {
      ...(this.#chunkSize === undefined ? {} : { chunkSize: this.#chunkSize }),
      ...(options.mountFrom === undefined ? {} : { mountFrom: options.mountFrom }),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      signal: options.signal,
    });
    return outcome === 'mounted' ? 'mounted' : 'copied';
  }

  async putManifest(manifest: ManifestData, tag: Tag | undefined, options: PutManifestOptions = {}): Promise<void> {
    const reference: Reference = tag === undefined ? { kind: 'digest', digest: manifest.digest } : { kind: 'tag', tag };
    await this.client.putManifest(this.repository, reference, manifest, options.signal);
  }

  /** The referrers API; where the registry has none, cosign's tags. */
  async referrers(subject: Digest, signal?: AbortSignal): Promise<ReferrerRef[]> {
    const listed = await this.client.referrers(this.repository, subject, undefined, signal);
    if (listed !== undefined) return listed.map((descriptor) => ({ digest: descriptor.digest }));
    const found: ReferrerRef[] = [];
    for (const tag of cosignTagsOf(subject)) {
      const head = await this.client.headManifest(this.repository, { kind: 'tag', tag }, signal);
      if (head?.digest !== undefined) found.push({ digest: head.digest, tag });
    }
    return found;
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}

  mountSource(source: ImageStore): RepositoryName | undefined {
    if (!(source instanceof RegistryStore) || source.client.baseUrl !== this.client.baseUrl || source.repository === this.repository) return undefined;
    return source.repository;
  }
}
