import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { BlobStore } from '../../blobs/blob-store.ts';
import type { RepositoryKindConfig } from '../../config/repositories.ts';
import type { Logger } from '../../log.ts';
import type { DropletStore, StagedDroplet } from '../../meta/droplet-store.ts';
import type { MetaStore } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import { UploadedApps, type AppDirectory } from './apps.ts';
import { CloudControllerApps } from './cloud-controller/cc-apps.ts';
import { CloudControllerClient } from './cloud-controller/cc-client.ts';
import { convertDroplet } from './droplet-layer.ts';
import { DropletSource, rootfsPath } from './droplet-source.ts';
import { composeDropletRecord, emptyConfig } from './image.ts';
import { RootfsBase } from './rootfs.ts';

export type DropletRepositoryConfig = Extract<RepositoryKindConfig, { kind: 'droplet' }>;

export interface DropletDependencies {
  blobs: BlobStore;
  meta: MetaStore;
  /** The droplet tables of the same database as `meta`. */
  store: DropletStore;
  redirects: boolean;
  /** Whether deletes are allowed at all (`registry.deletes`). */
  deletes: boolean;
  logger: Logger;
  /** Of several workers, whether this one imports a replaced rootfs file (the leader), and whether others serve too. */
  workers?: { leader: boolean; count: number };
}

/** A droplet source as configured: uploads, or a Cloud Controller when one is configured. */
export function createDropletSource(config: DropletRepositoryConfig, dependencies: DropletDependencies): DropletSource {
  const { blobs, meta, store, redirects } = dependencies;
  const logger = dependencies.logger.child({ droplets: config.prefix });
  const source = config.prefix;
  const owner = { uid: config.owner.uid, gid: config.owner.gid };
  const convert = (droplet: Parameters<typeof convertDroplet>[1], signal?: AbortSignal) => convertDroplet(blobs, droplet, owner, signal);
  // A converted layer that is not kept (lost a race, or not the droplet) goes at once, unless metadata knows the digest (it is someone else's too).
  const discard = async (layer: Digest) => {
    if ((await meta.blobs.storedSize(layer)) === undefined) await blobs.delete(layer);
  };
  const record = async (repository: RepositoryName, droplet: StagedDroplet, signal?: AbortSignal) => {
    if ((await blobs.stat(emptyConfig.digest, signal)) === undefined) {
      await writeBlob(blobs, Readable.from([emptyConfig.bytes]), { expected: emptyConfig.digest, ...(signal === undefined ? {} : { signal }) });
    }
    return composeDropletRecord(repository, droplet);
  };
  let apps: AppDirectory;
  let uploads: UploadedApps | undefined;
  const cc = config.cloudController;
  if (cc === undefined) {
    uploads = new UploadedApps(source, store, { convert, record, discard }, config.keepDroplets);
    apps = uploads;
  } else {
    const secretFile = cc.clientSecretFile;
    const client = new CloudControllerClient({
      url: cc.url,
      clientId: cc.clientId,
      clientSecret: async () => (secretFile === undefined ? (cc.clientSecret ?? '') : (await readFile(secretFile, 'utf8')).trim()),
      timeoutMs: cc.timeout,
      downloadIdleTimeoutMs: cc.downloadIdleTimeout,
      logger,
    });
    apps = new CloudControllerApps({ source, store, client, convert, discard, record, keep: config.keepDroplets, cacheTtlMs: cc.lookupCacheTtl, logger });
  }
  const rootfs = new RootfsBase(
    source,
    store,
    blobs,
    {
      ...(config.rootfs === undefined ? {} : { path: config.rootfs }),
      checkIntervalMs: config.rootfsCheckInterval,
      retentionMs: config.previousRootfsRetention,
      repository: `${source}${rootfsPath}` as RepositoryName,
      architecture: config.architecture,
      importer: importerRole(dependencies.workers),
    },
    logger,
  );
  return new DropletSource({
    prefix: source,
    blobs,
    meta,
    store,
    apps,
    ...(uploads === undefined ? {} : { uploads }),
    rootfs,
    architecture: config.architecture,
    owner,
    ...(cc === undefined ? {} : { cfApi: cc.url }),
    environment: config.environment,
    redirects,
    deletes: dependencies.deletes,
    logger,
  });
}

function importerRole(workers: DropletDependencies['workers']): 'on-demand' | 'scheduled' | 'elsewhere' {
  if (workers === undefined || workers.count <= 1) return 'on-demand';
  return workers.leader ? 'scheduled' : 'elsewhere';
}
