import { resolve } from 'node:path';
import { authFileCredentials, firstOf, staticCredentials, type CredentialSource } from '../client/credentials.ts';
import { RegistryClient } from '../client/registry-client.ts';
import type { RetryPolicy } from '../client/retry.ts';
import type { ImageStore } from './image-store.ts';
import { DockerDaemon } from './daemon/docker-daemon.ts';
import { defaultDaemonHost } from './daemon/engine-client.ts';
import { dockerHub, LocationError, type Location } from './location.ts';
import { DockerArchiveStore } from './transports/docker-archive.ts';
import { DirectoryStorage } from './transports/layout-dir.ts';
import { createS3Client } from '../io/s3/s3-client.ts';
import { S3Storage, type S3Options } from './transports/layout-s3.ts';
import { OciArchiveStore } from './transports/oci-archive.ts';
import { OciLayoutStore } from './transports/oci-layout.ts';
import { RegistryStore } from './transports/registry-store.ts';

/** How to reach a location: everything that is not in its name. */
export interface StoreOptions {
  /** Plain HTTP for docker:// (loopback registries use it without asking). */
  insecure?: boolean;
  /** `user:password` for docker://. */
  credentials?: { username: string; password: string };
  /** Auth files to search when no credentials are given. */
  authFiles: readonly string[];
  /** Blobs larger than this are uploaded to registries in resumable chunks of this size. */
  chunkSize?: number;
  s3?: S3Options;
  /** Where archives are unpacked while they are read or written. */
  tempDir: string;
  /** The name an image gets in a docker archive when the location names none. */
  defaultName?: string;
  retry?: RetryPolicy;
  userAgent?: string;
  /** The Docker Engine API for docker-daemon: (`unix:///…` or `tcp://…`; default: the standard socket). */
  daemonHost?: string;
}

/** Where a copy reads or writes: a store of blobs and manifests, or a daemon that trades whole images. */
export type Endpoint = ImageStore | DockerDaemon;

export async function openEndpoint(location: Location, options: StoreOptions, signal?: AbortSignal): Promise<Endpoint> {
  if (location.transport === 'docker-daemon') return new DockerDaemon(options.daemonHost ?? defaultDaemonHost, location.name);
  return openStore(location, options, signal);
}

export async function openStore(location: Location, options: StoreOptions, signal?: AbortSignal): Promise<ImageStore> {
  switch (location.transport) {
    case 'docker':
      return new RegistryStore(registryClient(location.registry, options), location.repository, options.chunkSize === undefined ? {} : { chunkSize: options.chunkSize });
    case 'oci':
      return new OciLayoutStore(new DirectoryStorage(resolve(location.path), `oci:${location.path}`));
    case 's3':
      return new OciLayoutStore(
        new S3Storage(createS3Client(options.s3 ?? { region: 'us-east-1', forcePathStyle: false }), location.bucket, location.prefix, { ownsClient: true }),
      );
    case 'oci-archive':
      return OciArchiveStore.open(resolve(location.path), options.tempDir, signal);
    case 'docker-archive':
      return DockerArchiveStore.open(
        resolve(location.path),
        {
          tempRoot: options.tempDir,
          ...(location.name === undefined ? {} : { name: location.name }),
          ...(location.index === undefined ? {} : { index: location.index }),
          ...(options.defaultName === undefined ? {} : { defaultName: options.defaultName }),
        },
        signal,
      );
    case 'docker-daemon':
      throw new LocationError(`docker-daemon:${location.name}: a daemon takes and gives whole images; it is not read blob by blob`);
  }
}

/** Every repository a registry's catalog lists (`berth sync` of a whole registry). */
export function listCatalog(registry: string, options: StoreOptions, signal?: AbortSignal): Promise<string[]> {
  return registryClient(registry, options).catalog(signal);
}

function registryClient(registry: string, options: Pick<StoreOptions, 'insecure' | 'credentials' | 'authFiles' | 'retry' | 'userAgent'>): RegistryClient {
  const apiHost = registry === dockerHub.name ? dockerHub.api : registry;
  const scheme = options.insecure === true || isLoopback(registry) ? 'http' : 'https';
  const files = authFileCredentials(options.authFiles);
  const credentials: CredentialSource = options.credentials === undefined ? files : firstOf(staticCredentials(options.credentials.username, options.credentials.password), files);
  return new RegistryClient({
    host: registry,
    baseUrl: `${scheme}://${apiHost}`,
    credentials,
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    userAgent: options.userAgent ?? 'berth-copy',
  });
}

function isLoopback(registry: string): boolean {
  const host = registry.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
