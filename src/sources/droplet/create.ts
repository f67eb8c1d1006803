import { readFile } from 'node:fs/promises';
import type { BlobStore } from '../../blobs/blob-store.ts';
import type { RepositoryKindConfig } from '../../config/repositories.ts';
import type { Logger } from '../../log.ts';
import { UploadedApps, type AppDirectory } from './apps.ts';
import { CloudControllerApps } from './cloud-controller/cc-apps.ts';
import { CloudControllerClient } from './cloud-controller/cc-client.ts';
import type { DropletIndex } from './droplet-index.ts';
import { convertDroplet } from './droplet-layer.ts';
import { DropletSource } from './droplet-source.ts';
import { RootfsBase } from './rootfs.ts';

export type DropletRepositoryConfig = Extract<RepositoryKindConfig, { kind: 'droplet' }>;

export interface DropletDependencies {
  blobs: BlobStore;
  /** Owned by the source from now on: closed with it. */
  index: DropletIndex;
  redirects: boolean;
  logger: Logger;
}

/** A droplet source as configured: uploads, or a Cloud Controller when one is configured. */
export function createDropletSource(config: DropletRepositoryConfig, dependencies: DropletDependencies): DropletSource {
  const { blobs, index, redirects } = dependencies;
  const logger = dependencies.logger.child({ droplets: config.prefix });
  const source = config.prefix;
  const owner = { uid: config.owner.uid, gid: config.owner.gid };
  const convert = (droplet: Parameters<typeof convertDroplet>[1], signal?: AbortSignal) => convertDroplet(blobs, droplet, owner, signal);
  let apps: AppDirectory;
  const cc = config.cloudController;
  if (cc === undefined) {
    apps = new UploadedApps(source, index, convert, config.keepDroplets);
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
    apps = new CloudControllerApps({ source, index, client, convert, keep: config.keepDroplets, cacheTtlMs: cc.lookupCacheTtl, logger });
  }
  const rootfs = new RootfsBase(
    source,
    index,
    blobs,
    {
      ...(config.rootfs === undefined ? {} : { path: config.rootfs }),
      checkIntervalMs: config.rootfsCheckInterval,
      retentionMs: config.previousRootfsRetention,
    },
    logger,
  );
  return new DropletSource({
    prefix: source,
    blobs,
    index,
    apps,
    rootfs,
    architecture: config.architecture,
    owner,
    redirects,
    logger,
    close: () => index.close(),
  });
}
