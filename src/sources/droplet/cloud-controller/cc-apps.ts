import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isRegistryError, RegistryError } from '../../../errors/registry-error.ts';
import type { Logger } from '../../../log.ts';
import type { DropletStore, StagedDroplet } from '../../../meta/droplet-store.ts';
import type { Digest } from '../../../oci/digest.ts';
import { isTag, type RepositoryName } from '../../../oci/names.ts';
import { MeteredStream, through } from '../../../io/metered-stream.ts';
import { KeyedLock } from '../../../registry/keyed-lock.ts';
import type { AppDirectory, AppRef, DropletRecorder, DropletRequest, ProcessFacts, ResolvedDroplet } from '../apps.ts';
import type { ConvertedDroplet } from '../droplet-layer.ts';
import type { CloudControllerClient } from './cc-client.ts';
import { TtlCache } from './ttl-cache.ts';

/** The parts of a v3 droplet resource used here. */
interface CcDroplet {
  guid: string;
  state?: string;
  created_at?: string;
  checksum?: { type?: string; value?: string } | null;
  lifecycle?: { type?: string };
  process_types?: Record<string, unknown> | null;
  image?: string | null;
}

interface CcResource {
  guid: string;
  name?: string;
  relationships?: Record<string, { data?: { guid?: string } | null } | undefined>;
}

/** The parts of a v3 process resource used here. */
interface CcProcess {
  command?: string | null;
  memory_in_mb?: number;
  disk_in_mb?: number;
}

/** What the Cloud Controller shows instead of values the client may not read. */
const hidden = '[PRIVATE DATA HIDDEN]';

export interface CloudControllerAppsOptions {
  source: string;
  store: DropletStore;
  client: CloudControllerClient;
  convert: (droplet: Readable, signal?: AbortSignal) => Promise<ConvertedDroplet>;
  /** Removes a converted layer that turned out not to be the droplet (checksum mismatch), unless metadata knows it. */
  discard: (layer: Digest) => Promise<void>;
  record: DropletRecorder;
  keep: number;
  cacheTtlMs: number;
  logger: Logger;
}

/**
 * Apps of a Cloud Foundry, by `<org>/<space>/<app>` or `<app guid>`. The
 * current droplet is `latest`; any STAGED droplet is pullable by its guid.
 * Droplet bits are downloaded and converted once, then found in the index
 * by droplet guid or by the sha256 checksum the Cloud Controller reports.
 */
export class CloudControllerApps implements AppDirectory {
  readonly #options: CloudControllerAppsOptions;
  readonly #apps: TtlCache<AppRef>;
  readonly #current: TtlCache<CcDroplet | null>;
  readonly #conversions = new KeyedLock();

  constructor(options: CloudControllerAppsOptions) {
    this.#options = options;
    this.#apps = new TtlCache(options.cacheTtlMs);
    this.#current = new TtlCache(options.cacheTtlMs);
  }

  app(path: string): Promise<AppRef> {
    return this.#apps.get(path, () => this.#lookUp(path));
  }

  async droplet(app: AppRef, request: DropletRequest, repository: RepositoryName, signal?: AbortSignal): Promise<ResolvedDroplet> {
    const current = request.droplet === 'latest';
    const droplet = current ? await this.#currentDroplet(app) : await this.#dropletOf(app, request.droplet, signal);
    if (droplet === undefined) {
      throw new RegistryError('MANIFEST_UNKNOWN', current ? `app ${app.name} has no current droplet` : `app ${app.name} has no droplet ${request.droplet}`, {
        detail: { app: app.name, tag: request.droplet },
      });
    }
    if (droplet.lifecycle?.type === 'docker') {
      throw new RegistryError('MANIFEST_UNKNOWN', `app ${app.name} runs the Docker image ${droplet.image ?? '(unknown)'}; pull that image instead`, {
        detail: { app: app.name, droplet: droplet.guid },
      });
    }
    if (droplet.state !== 'STAGED') {
      throw new RegistryError('MANIFEST_UNKNOWN', `droplet ${droplet.guid} of app ${app.name} is ${droplet.state ?? 'in no state'}, not STAGED`, {
        detail: { app: app.name, droplet: droplet.guid, state: droplet.state ?? null },
      });
    }
    const staged = await this.#layerOf(app, droplet, repository, signal);
    const process = (await this.#options.client.get(`/v3/apps/${app.key}/processes/${encodeURIComponent(request.process)}`, signal)) as CcProcess | undefined;
    // The command a user set on the app's process is what runs now: it applies to the current droplet only.
    const candidates = [current ? process?.command : undefined, droplet.process_types?.[request.process], staged.processTypes[request.process]];
    const command = candidates.find((candidate): candidate is string => typeof candidate === 'string' && candidate.trim() !== '' && candidate !== hidden);
    if (command === undefined && process === undefined && request.process !== 'web') {
      throw new RegistryError('MANIFEST_UNKNOWN', `app ${app.name} has no process type ${request.process}`, {
        detail: { app: app.name, process: request.process },
      });
    }
    const facts: ProcessFacts = {};
    if (typeof process?.memory_in_mb === 'number') facts.memoryMb = process.memory_in_mb;
    if (typeof process?.disk_in_mb === 'number') facts.diskMb = process.disk_in_mb;
    return { droplet: staged, command, created: parseTime(droplet.created_at), process: facts };
  }

  async guids(app: AppRef, signal?: AbortSignal): Promise<string[]> {
    const droplets = (await this.#options.client.list(`/v3/apps/${app.key}/droplets?states=STAGED&per_page=5000`, signal)) as CcDroplet[];
    return droplets
      .map((droplet) => droplet.guid)
      .filter(isTag)
      .sort();
  }

  /** Apps are not listed: enumerating a Cloud Foundry's apps is not a registry's business. */
  async paths(): Promise<string[]> {
    return [];
  }

  async #lookUp(path: string): Promise<AppRef> {
    const { client } = this.#options;
    const parts = path.split('/');
    if (parts.length === 1) {
      const app = (await client.get(`/v3/apps/${encodeURIComponent(path)}`)) as CcResource | undefined;
      if (app === undefined) throw nameUnknown(`no app has the guid ${path}`, path);
      const spaceGuid = app.relationships?.['space']?.data?.guid;
      const space = spaceGuid === undefined ? undefined : ((await client.get(`/v3/spaces/${encodeURIComponent(spaceGuid)}`)) as CcResource | undefined);
      const orgGuid = space?.relationships?.['organization']?.data?.guid;
      const org = orgGuid === undefined ? undefined : ((await client.get(`/v3/organizations/${encodeURIComponent(orgGuid)}`)) as CcResource | undefined);
      return toAppRef(app, space, org);
    }
    const [orgName, spaceName, appName] = parts;
    if (parts.length !== 3 || orgName === undefined || spaceName === undefined || appName === undefined) {
      throw nameUnknown('droplet images are named <org>/<space>/<app> or <app guid>', path);
    }
    const org = await this.#first(`/v3/organizations?names=${encodeURIComponent(orgName)}`);
    if (org === undefined) throw nameUnknown(`no org is named ${orgName}`, path);
    const space = await this.#first(`/v3/spaces?names=${encodeURIComponent(spaceName)}&organization_guids=${org.guid}`);
    if (space === undefined) throw nameUnknown(`org ${orgName} has no space ${spaceName}`, path);
    const app = await this.#first(`/v3/apps?names=${encodeURIComponent(appName)}&space_guids=${space.guid}`);
    if (app === undefined) throw nameUnknown(`space ${orgName}/${spaceName} has no app ${appName}`, path);
    return toAppRef(app, space, org);
  }

  async #first(path: string): Promise<CcResource | undefined> {
    const page = (await this.#options.client.get(path)) as { resources?: CcResource[] } | undefined;
    return page?.resources?.[0];
  }

  async #currentDroplet(app: AppRef): Promise<CcDroplet | undefined> {
    const droplet = await this.#current.get(app.key, async () => {
      const found = (await this.#options.client.get(`/v3/apps/${app.key}/droplets/current`)) as CcDroplet | undefined;
      return found ?? null;
    });
    return droplet ?? undefined;
  }

  /** A droplet of this app (the app-scoped listing makes sure it is this app's). */
  async #dropletOf(app: AppRef, guid: string, signal?: AbortSignal): Promise<CcDroplet | undefined> {
    const page = (await this.#options.client.get(`/v3/apps/${app.key}/droplets?guids=${encodeURIComponent(guid)}`, signal)) as { resources?: CcDroplet[] } | undefined;
    return page?.resources?.find((droplet) => droplet.guid === guid);
  }

  async #layerOf(app: AppRef, droplet: CcDroplet, repository: RepositoryName, signal?: AbortSignal): Promise<StagedDroplet> {
    const { store, source } = this.#options;
    const known = await store.droplets.get(source, app.key, droplet.guid);
    if (known !== undefined) return known;
    // One download per droplet however many pulls ask at once (in this process; replicas agree through the store).
    return this.#conversions.run(droplet.guid, async () => {
      return (await store.droplets.get(source, app.key, droplet.guid)) ?? (await this.#convert(app, droplet, repository, signal));
    });
  }

  async #convert(app: AppRef, droplet: CcDroplet, repository: RepositoryName, signal?: AbortSignal): Promise<StagedDroplet> {
    const { store, source, client, keep, logger } = this.#options;
    const stagedAt = parseTime(droplet.created_at);
    const checksum = droplet.checksum;
    const known = checksum?.type === 'sha256' && checksum.value !== undefined ? await store.conversions.get(`sha256:${checksum.value}` as Digest) : undefined;
    let staged: StagedDroplet;
    if (known !== undefined) {
      staged = { ...known, guid: droplet.guid, stagedAt };
    } else {
      const sha1 = checksum?.type === 'sha1' ? createHash('sha1') : undefined;
      const bits = await client.download(`/v3/droplets/${droplet.guid}/download`, signal);
      let converted: ConvertedDroplet;
      try {
        converted = await this.#options.convert(sha1 === undefined ? bits : through(bits, new MeteredStream(sha1)), signal);
      } catch (error) {
        if (isRegistryError(error) && error.code === 'BLOB_UPLOAD_INVALID') {
          throw new RegistryError('UNKNOWN', `droplet ${droplet.guid} of app ${app.name} cannot be made a layer: ${error.message}`, { status: 502, cause: error });
        }
        throw error;
      }
      const actual = checksum?.type === 'sha1' ? sha1?.digest('hex') : converted.dropletDigest.slice('sha256:'.length);
      if (checksum?.value !== undefined && (checksum.type === 'sha1' || checksum.type === 'sha256') && actual !== checksum.value) {
        await this.#options.discard(converted.layer.digest);
        throw new RegistryError('UNKNOWN', `droplet ${droplet.guid} downloaded from the blobstore does not match the Cloud Controller's ${checksum.type} checksum`, {
          status: 502,
        });
      }
      const { dropletSize: _size, ...conversion } = converted;
      staged = { ...conversion, guid: droplet.guid, stagedAt };
      logger.info({ app: app.name, droplet: droplet.guid, layer: converted.layer.digest, bytes: converted.dropletSize }, 'droplet converted to a layer');
    }
    return store.droplets.put(source, app.key, staged, await this.#options.record(repository, staged, signal), keep);
  }
}

function toAppRef(app: CcResource, space: CcResource | undefined, org: CcResource | undefined): AppRef {
  const ref: AppRef = { key: app.guid, name: app.name ?? app.guid, guid: app.guid };
  if (space !== undefined) ref.space = { name: space.name ?? space.guid, guid: space.guid };
  if (org !== undefined) ref.organization = { name: org.name ?? org.guid, guid: org.guid };
  return ref;
}

function nameUnknown(message: string, path: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `${message} in the Cloud Controller`, { detail: { app: path } });
}

function parseTime(value: string | undefined): Date {
  const time = value === undefined ? Number.NaN : Date.parse(value);
  return new Date(Number.isNaN(time) ? 0 : time);
}
