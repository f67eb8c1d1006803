import { Readable } from 'node:stream';
import type { BlobStore, ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Logger } from '../../log.ts';
import type { Page } from '../../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../../oci/accept.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import { blobUnknown } from '../../registry/hosted.ts';
import { manifestUnknown } from '../../registry/manifests.ts';
import type { BlobBody, DropletReceiver, ManifestContent, Repository, RepositorySource } from '../../registry/repository.ts';
import { storedBlobBody } from '../../registry/blob-body.ts';
import { compareNames } from '../../registry/router.ts';
import type { AppDirectory, AppRef } from './apps.ts';
import type { DropletIndex } from './droplet-index.ts';
import type { DropletOwner } from './droplet-layer.ts';
import { composeImage, type ImageFormat } from './image.ts';
import type { RootfsBase } from './rootfs.ts';

/** Everything the droplet repositories of one prefix share. */
export interface DropletContext {
  /** The prefix served, which also scopes this source's records in the index. */
  prefix: string;
  blobs: BlobStore;
  index: DropletIndex;
  apps: AppDirectory;
  rootfs: RootfsBase;
  architecture: string;
  owner: DropletOwner;
  /** Whether blob GETs may answer 307 to the store's own URL. */
  redirects: boolean;
  logger: Logger;
  /** Closes what the context owns (the index). */
  close(): Promise<void>;
}

/**
 * Cloud Foundry apps as images: each pull composes the app's droplet layer
 * onto the latest rootfs. Compositions are remembered so that a digest
 * stays pullable while its rootfs is current or within retention.
 */
export class DropletSource implements RepositorySource {
  readonly #context: DropletContext;

  constructor(context: DropletContext) {
    this.#context = context;
  }

  get rootfs(): RootfsBase {
    return this.#context.rootfs;
  }

  async open(name: RepositoryName): Promise<Repository> {
    const path = name.slice(this.#context.prefix.length);
    if (path === '') throw new RegistryError('NAME_UNKNOWN', `repository ${name} names no app`, { detail: { name } });
    return new DropletRepository(name, path, this.#context);
  }

  async catalog(page: Page): Promise<RepositoryName[]> {
    const { prefix, apps } = this.#context;
    const last = page.last ?? '';
    if (last !== '' && !last.startsWith(prefix) && compareNames(last, prefix) > 0) return [];
    const within: Page = { last: last.startsWith(prefix) ? last.slice(prefix.length) : '' };
    if (page.limit !== undefined) within.limit = page.limit;
    return (await apps.paths(within)).map((path) => `${prefix}${path}` as RepositoryName);
  }

  /** Droplet layers, rootfs layers within retention and generated configs: none is linked in the MetaStore. */
  retainedBlobs(): AsyncIterable<Digest> {
    return this.#context.index.retainedBlobs(new Date());
  }

  async close(): Promise<void> {
    await this.#context.rootfs.close();
    await this.#context.close();
  }
}

class DropletRepository implements Repository {
  readonly name: RepositoryName;
  readonly droplets?: DropletReceiver;
  readonly #path: string;
  readonly #context: DropletContext;

  constructor(name: RepositoryName, path: string, context: DropletContext) {
    this.name = name;
    this.#path = path;
    this.#context = context;
    const receive = context.apps.receive?.bind(context.apps);
    if (receive !== undefined) {
      this.droplets = { receive: async (guid, droplet, signal) => receive(await context.apps.app(path, signal), guid, droplet, signal) };
    }
  }

  async manifest(reference: Reference, accept: MediaTypeAcceptance, signal?: AbortSignal): Promise<ManifestContent> {
    const { index, prefix } = this.#context;
    if (reference.kind === 'digest') {
      const composition = await index.compositions.get(prefix, this.name, reference.digest, new Date());
      if (composition === undefined) throw manifestUnknown(reference);
      return { digest: composition.digest, mediaType: composition.mediaType, bytes: composition.bytes };
    }
    const format = formatFor(accept);
    const app = await this.#context.apps.app(this.#path, signal);
    return this.#compose(app, reference.tag, format, signal);
  }

  async #compose(app: AppRef, tag: Tag, format: ImageFormat, signal?: AbortSignal): Promise<ManifestContent> {
    const { index, prefix, blobs, apps } = this.#context;
    const { droplet, startCommand } = await apps.droplet(app, tag, signal);
    const rootfs = await this.#context.rootfs.current();
    const image = composeImage(
      {
        rootfs,
        droplet: droplet.layer,
        architecture: this.#context.architecture,
        owner: this.#context.owner,
        startCommand,
        appName: app.name,
        ...(app.guid === undefined ? {} : { appGuid: app.guid }),
        dropletGuid: droplet.guid,
        dropletDigest: droplet.dropletDigest,
        stagedAt: droplet.stagedAt,
      },
      format,
    );
    const now = new Date();
    const { manifest, config } = image;
    if ((await index.compositions.get(prefix, this.name, manifest.digest, now)) === undefined) {
      if ((await blobs.stat(config.digest, signal)) === undefined) {
        await writeBlob(blobs, Readable.from([config.bytes]), { expected: config.digest, ...(signal === undefined ? {} : { signal }) });
      }
      await index.compositions.put(
        prefix,
        { repository: this.name, digest: manifest.digest, mediaType: manifest.mediaType, bytes: manifest.bytes, config, rootfs, dropletLayer: droplet.layer },
        now,
      );
    }
    return { digest: manifest.digest, mediaType: manifest.mediaType, bytes: manifest.bytes };
  }

  async blobSize(digest: Digest): Promise<number> {
    const size = await this.#context.index.compositions.blobSize(this.#context.prefix, this.name, digest, new Date());
    if (size === undefined) throw blobUnknown(digest);
    return size;
  }

  openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody> {
    const { blobs, redirects } = this.#context;
    return storedBlobBody(blobs, digest, range, { redirects, signal });
  }

  async tags(page: Page, signal?: AbortSignal): Promise<Tag[]> {
    const app = await this.#context.apps.app(this.#path, signal);
    const all = [...new Set([...(await this.#context.apps.guids(app, signal)), 'latest'])].sort(compareNames) as Tag[];
    const after = page.last === undefined ? all : all.filter((tag) => compareNames(tag, page.last as string) > 0);
    return page.limit === undefined ? after : after.slice(0, page.limit);
  }

  async referrers(): Promise<Descriptor[]> {
    return [];
  }
}

/**
 * OCI unless the client accepts only Docker schema 2 (older Docker engines
 * and tools); both renderings name the same config and gzip layers.
 */
function formatFor(accept: MediaTypeAcceptance): ImageFormat {
  if (accept.accepts(mediaTypes.ociManifest)) return 'oci';
  if (accept.accepts(mediaTypes.dockerManifest)) return 'docker';
  throw new RegistryError('MANIFEST_UNKNOWN', 'droplet images are served as OCI or Docker schema 2 manifests; the request accepts neither', {
    detail: { accepted: accept.named },
  });
}
