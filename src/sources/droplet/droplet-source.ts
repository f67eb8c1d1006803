import { Readable } from 'node:stream';
import type { BlobStore, ByteRange } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Logger } from '../../log.ts';
import type { DropletStore } from '../../meta/droplet-store.ts';
import type { MetaStore, Page } from '../../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../../oci/accept.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Descriptor } from '../../oci/manifest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import type { Reference, RepositoryName, Tag } from '../../oci/names.ts';
import { storedBlobBody } from '../../registry/blob-body.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import { blobUnknown, StoredRepository } from '../../registry/stored-repository.ts';
import { refusingWriter } from '../../registry/refusing-writer.ts';
import { manifestUnknown } from '../../registry/manifests.ts';
import type { BlobBody, ManifestContent, Repository, RepositorySource, RepositoryWriter } from '../../registry/repository.ts';
import { compareNames } from '../../registry/router.ts';
import type { AppDirectory, AppRef, DropletRequest, UploadedApps } from './apps.ts';
import type { DropletOwner } from './droplet-layer.ts';
import { composeImage, type ImageFormat } from './image.ts';
import type { RootfsBase } from './rootfs.ts';

/** Everything the droplet repositories of one prefix share. */
export interface DropletContext {
  /** The prefix served, which also scopes this source's records in the store. */
  prefix: string;
  blobs: BlobStore;
  meta: MetaStore;
  store: DropletStore;
  apps: AppDirectory;
  /** Present when droplets are uploaded rather than fetched from a Cloud Controller. */
  uploads?: UploadedApps;
  rootfs: RootfsBase;
  architecture: string;
  owner: DropletOwner;
  /** The Cloud Controller's API URL (VCAP_APPLICATION's cf_api). */
  cfApi?: string;
  /** Variables the operator configured for every image of the prefix. */
  environment: Readonly<Record<string, string>>;
  /** Whether blob GETs may answer 307 to the store's own URL. */
  redirects: boolean;
  /** Whether uploaded droplets may be deleted (`registry.deletes`). */
  deletes: boolean;
  logger: Logger;
}

/** The path below a prefix where each rootfs is kept as an image of its own. */
export const rootfsPath = 'rootfs';

/**
 * Cloud Foundry apps as images: each pull composes a droplet layer onto the
 * latest rootfs. Compositions are ordinary manifests of the app's
 * repository, so that a digest stays pullable while its rootfs is current
 * or within retention, and garbage collection sees their blobs as links.
 */
export class DropletSource implements RepositorySource {
  readonly #context: DropletContext;

  constructor(context: DropletContext) {
    this.#context = context;
  }

  get prefix(): string {
    return this.#context.prefix;
  }

  get rootfs(): RootfsBase {
    return this.#context.rootfs;
  }

  /** The uploaded apps of this prefix; undefined when droplets come from a Cloud Controller. */
  get uploads(): UploadedApps | undefined {
    return this.#context.uploads;
  }

  /**
   * Takes an uploaded droplet for the app `name` names; resolves to its
   * layer. UNSUPPORTED when droplets come from a Cloud Controller.
   */
  async receive(name: RepositoryName, guid: string, droplet: Readable, signal?: AbortSignal): Promise<Digest> {
    const { uploads, prefix } = this.#context;
    if (uploads === undefined) {
      throw new RegistryError('UNSUPPORTED', `repository ${name} does not take droplets: its droplets come from the Cloud Controller`, { detail: { name } });
    }
    const path = name.slice(prefix.length);
    if (path === '' || path === rootfsPath) {
      throw new RegistryError('NAME_INVALID', `${name} is not an app: ${prefix}${rootfsPath} holds the rootfs`, { detail: { name } });
    }
    const stored = await uploads.receive(await uploads.app(path), guid, name, droplet, signal);
    return stored.layer.digest;
  }

  async open(name: RepositoryName): Promise<Repository> {
    const path = name.slice(this.#context.prefix.length);
    if (path === '') throw new RegistryError('NAME_UNKNOWN', `repository ${name} names no app`, { detail: { name } });
    // `<prefix>rootfs`: every rootfs kept (current or within retention) as an ordinary stored image, `latest` the current one.
    if (path === rootfsPath) return new StoredRepository(name, this.#context);
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

  async close(): Promise<void> {
    await this.#context.rootfs.close();
  }
}

/** `<tag>.<process>` names another process type than web; guids and `latest` hold no ".". */
export function dropletRequestOf(tag: Tag): DropletRequest {
  const dot = tag.lastIndexOf('.');
  return dot <= 0 ? { droplet: tag, process: 'web' } : { droplet: tag.slice(0, dot), process: tag.slice(dot + 1) };
}

class DropletRepository implements Repository {
  readonly name: RepositoryName;
  readonly writer?: RepositoryWriter;
  readonly #path: string;
  readonly #context: DropletContext;

  constructor(name: RepositoryName, path: string, context: DropletContext) {
    this.name = name;
    this.#path = path;
    this.#context = context;
    if (context.uploads !== undefined) this.writer = uploadsWriter(name, path, context.uploads, context);
  }

  async manifest(reference: Reference, accept: MediaTypeAcceptance, signal?: AbortSignal): Promise<ManifestContent> {
    const { store, prefix } = this.#context;
    if (reference.kind === 'digest') {
      const composition = await store.compositions.get(prefix, this.name, reference.digest, new Date());
      if (composition === undefined) throw manifestUnknown(reference);
      return { digest: composition.digest, mediaType: composition.mediaType, bytes: composition.bytes };
    }
    const format = formatFor(accept);
    const app = await this.#context.apps.app(this.#path, signal);
    return this.#compose(app, reference.tag, format, signal);
  }

  async #compose(app: AppRef, tag: Tag, format: ImageFormat, signal?: AbortSignal): Promise<ManifestContent> {
    const { store, prefix, blobs, apps } = this.#context;
    const request = dropletRequestOf(tag);
    const { droplet, command, created, process } = await apps.droplet(app, request, this.name, signal);
    const rootfs = await this.#context.rootfs.current();
    const image = composeImage(
      {
        rootfs,
        droplet: droplet.layer,
        architecture: this.#context.architecture,
        owner: this.#context.owner,
        startCommand: command,
        app,
        processType: request.process,
        process,
        ...(this.#context.cfApi === undefined ? {} : { cfApi: this.#context.cfApi }),
        environment: this.#context.environment,
        dropletGuid: droplet.guid,
        dropletDigest: droplet.dropletDigest,
        created,
      },
      format,
    );
    const now = new Date();
    const { manifest, config } = image;
    if ((await store.compositions.get(prefix, this.name, manifest.digest, now)) === undefined) {
      if ((await blobs.stat(config.digest, signal)) === undefined) {
        await writeBlob(blobs, Readable.from([config.bytes]), { expected: config.digest, ...(signal === undefined ? {} : { signal }) });
      }
      const composition = {
        repository: this.name,
        app: app.key,
        dropletGuid: droplet.guid,
        digest: manifest.digest,
        mediaType: manifest.mediaType,
        bytes: manifest.bytes,
        config,
        rootfs,
        dropletLayer: droplet.layer,
      };
      if (!(await store.compositions.put(prefix, composition, tag, now))) {
        throw new RegistryError('MANIFEST_UNKNOWN', `droplet ${droplet.guid} of app ${app.name} was forgotten while its image was composed`, { detail: { tag } });
      }
    }
    return { digest: manifest.digest, mediaType: manifest.mediaType, bytes: manifest.bytes };
  }

  async blobSize(digest: Digest): Promise<number> {
    const size = await this.#context.store.compositions.blobSize(this.#context.prefix, this.name, digest, new Date());
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
 * The write side of an upload droplet repository: deleting a droplet by
 * its guid (or by the digest of one of its images). Uploads themselves go
 * through `POST /v2/<name>/blobs/?guid=`; every other write is refused.
 */
function uploadsWriter(name: RepositoryName, path: string, uploads: UploadedApps, context: DropletContext): RepositoryWriter {
  const reason = () => new RegistryError('UNSUPPORTED', `${name} is a droplet repository: upload droplets with POST /v2/${name}/blobs/?guid=<droplet guid>`, { detail: { name } });
  return refusingWriter(reason, {
    async deleteManifest(reference) {
      if (!context.deletes) throw new RegistryError('UNSUPPORTED', 'deletes are disabled on this registry (registry.deletes: false)');
      const app = await uploads.app(path);
      if (reference.kind === 'tag') {
        const request = dropletRequestOf(reference.tag);
        if (request.droplet === 'latest' || request.process !== 'web') {
          throw new RegistryError('UNSUPPORTED', `delete a droplet by its guid, not by ${reference.tag}`, { detail: { tag: reference.tag } });
        }
        await uploads.remove(app, request.droplet);
        return;
      }
      const composition = await context.store.compositions.get(context.prefix, name, reference.digest, new Date());
      if (composition === undefined) throw manifestUnknown(reference);
      await uploads.remove(app, composition.dropletGuid);
    },
  });
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
