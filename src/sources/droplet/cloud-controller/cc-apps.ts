import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { isRegistryError, RegistryError } from '../../../errors/registry-error.ts';
import type { Logger } from '../../../log.ts';
import type { Digest } from '../../../oci/digest.ts';
import { isTag, type Tag } from '../../../oci/names.ts';
import { MeteredStream, through } from '../../../io/metered-stream.ts';
import { KeyedLock } from '../../../registry/keyed-lock.ts';
import type { AppDirectory, AppRef, ResolvedDroplet } from '../apps.ts';
import type { DropletIndex, StagedDroplet } from '../droplet-index.ts';
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
}

/** What the Cloud Controller shows instead of values the client may not read. */
const hidden = '[PRIVATE DATA HIDDEN]';

export interface CloudControllerAppsOptions {
  source: string;
  index: DropletIndex;
  client: CloudControllerClient;
  convert: (droplet: Readable, signal?: AbortSignal) => Promise<ConvertedDroplet>;
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

  async droplet(app: AppRef, tag: Tag, signal?: AbortSignal): Promise<ResolvedDroplet> {
    const droplet = tag === 'latest' ? await this.#currentDroplet(app) : await this.#dropletOf(app, tag, signal);
    if (droplet === undefined) {
      throw new RegistryError('MANIFEST_UNKNOWN', tag === 'latest' ? `app ${app.name} has no current droplet` : `app ${app.name} has no droplet ${tag}`, {
        detail: { app: app.name, tag },
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
    const staged = await this.#layerOf(app, droplet, signal);
    return { droplet: staged, startCommand: await this.#startCommand(app, droplet, staged, signal) };
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
      return toAppRef(app);
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
    return toAppRef(app);
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
    const page = (await this.#options.client.get(`/v3/apps/${app.key}/droplets?guids=${encodeURIComponent(guid)}`, signal)) as
      | { resources?: CcDroplet[] }
      | undefined;
    return page?.resources?.find((droplet) => droplet.guid === guid);
  }

  async #layerOf(app: AppRef, droplet: CcDroplet, signal?: AbortSignal): Promise<StagedDroplet> {
    const { index, source } = this.#options;
    const known = await index.droplets.get(source, app.key, droplet.guid);
    if (known !== undefined) return known;
    // One download per droplet however many pulls ask at once.
    return this.#conversions.run(droplet.guid, async () => {
      const converted = (await index.droplets.get(source, app.key, droplet.guid)) ?? (await this.#convert(app, droplet, signal));
      return converted;
    });
  }

  async #convert(app: AppRef, droplet: CcDroplet, signal?: AbortSignal): Promise<StagedDroplet> {
    const { index, source, client, keep, logger } = this.#options;
    const stagedAt = parseTime(droplet.created_at);
    const checksum = droplet.checksum;
    const known = checksum?.type === 'sha256' && checksum.value !== undefined ? await index.conversions.get(`sha256:${checksum.value}` as Digest) : undefined;
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
        throw new RegistryError('UNKNOWN', `droplet ${droplet.guid} downloaded from the blobstore does not match the Cloud Controller's ${checksum.type} checksum`, {
          status: 502,
        });
      }
      staged = { ...converted, guid: droplet.guid, stagedAt };
      logger.info({ app: app.name, droplet: droplet.guid, layer: converted.layer.digest, bytes: converted.dropletSize }, 'droplet converted to a layer');
    }
    await index.droplets.put(source, app.key, staged, keep);
    return staged;
  }

  /** The web process's command as the Cloud Controller reports it, else the droplet's, else staging_info.yml's. */
  async #startCommand(app: AppRef, droplet: CcDroplet, staged: StagedDroplet, signal?: AbortSignal): Promise<string | undefined> {
    const process = (await this.#options.client.get(`/v3/apps/${app.key}/processes/web`, signal)) as { command?: unknown } | undefined;
    for (const candidate of [process?.command, droplet.process_types?.['web']]) {
      if (typeof candidate === 'string' && candidate.trim() !== '' && candidate !== hidden) return candidate;
    }
    return staged.startCommand;
  }
}

function toAppRef(app: CcResource): AppRef {
  return { key: app.guid, name: app.name ?? app.guid, guid: app.guid };
}

function nameUnknown(message: string, path: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `${message} in the Cloud Controller`, { detail: { app: path } });
}

function parseTime(value: string | undefined): Date {
  const time = value === undefined ? Number.NaN : Date.parse(value);
  return new Date(Number.isNaN(time) ? 0 : time);
}
