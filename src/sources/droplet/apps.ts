import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { RegistryError } from '../../errors/registry-error.ts';
import type { DropletStore, RecordImage, StagedDroplet } from '../../meta/droplet-store.ts';
import type { Page } from '../../meta/meta-store.ts';
import { finishDigest, type Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import { MeteredStream, through } from '../../io/metered-stream.ts';
import type { ConvertedDroplet } from './droplet-layer.ts';

/** An app as a droplet repository names it. */
export interface AppRef {
  /** Key of the app's droplets in the store (the path, or the Cloud Controller's app guid). */
  key: string;
  /** The app's name for labels: `<space>/<app>`, or the Cloud Controller's app name. */
  name: string;
  guid?: string;
  space?: { name: string; guid: string };
  organization?: { name: string; guid: string };
}

/** What a pull asks for: `latest` (the current droplet) or a droplet guid, and a process type. */
export interface DropletRequest {
  droplet: 'latest' | string;
  process: string;
}

/** What Cloud Foundry would know about the process at run time, as far as Berth can tell. */
export interface ProcessFacts {
  /** The process's memory limit, in MB (Cloud Controller mode). */
  memoryMb?: number;
  diskMb?: number;
  /** The routes' host names (`application_uris`). */
  uris?: string[];
}

/** A droplet ready to compose: its layer, the command of the process asked for, and when it was made. */
export interface ResolvedDroplet {
  droplet: StagedDroplet;
  command: string | undefined;
  /** The image's `created`: the droplet's own creation time, or a fixed time when that is unknown. */
  created: Date;
  process: ProcessFacts;
}

/** Uploaded droplets have no creation time of their own: every image of one gets this one, so that digests depend only on content. */
export const fixedCreated = new Date(0);

/**
 * Where a droplet repository's apps and droplets come from: uploads kept
 * in the store, or a Cloud Controller.
 */
export interface AppDirectory {
  /** The app a repository path (the name without the prefix) designates; NAME_UNKNOWN when none. */
  app(path: string, signal?: AbortSignal): Promise<AppRef>;
  /** The droplet and process a pull names; MANIFEST_UNKNOWN when none. */
  droplet(app: AppRef, request: DropletRequest, repository: RepositoryName, signal?: AbortSignal): Promise<ResolvedDroplet>;
  /** Droplet guids of the app, sorted. */
  guids(app: AppRef, signal?: AbortSignal): Promise<string[]>;
  /** App paths to list in the catalog, sorted. */
  paths(page: Page): Promise<string[]>;
}

export type DropletConverter = (droplet: Readable, signal?: AbortSignal) => Promise<ConvertedDroplet>;

/** The record image of a droplet in `repository`, its blobs stored (see composeDropletRecord). */
export type DropletRecorder = (repository: RepositoryName, droplet: StagedDroplet, signal?: AbortSignal) => Promise<RecordImage>;

/** Apps whose droplets are uploaded (the cube registry's way): everything is in the store. */
export class UploadedApps implements AppDirectory {
  readonly #source: string;
  readonly #store: DropletStore;
  readonly #convert: DropletConverter;
  readonly #keep: number;
  readonly #discard: (layer: Digest) => Promise<void>;
  readonly #record: DropletRecorder;

  /** `discard` removes a converted layer that lost a race for its guid, unless metadata knows the digest. */
  constructor(source: string, store: DropletStore, tools: { convert: DropletConverter; record: DropletRecorder; discard: (layer: Digest) => Promise<void> }, keep: number) {
    this.#source = source;
    this.#store = store;
    this.#convert = tools.convert;
    this.#record = tools.record;
    this.#discard = tools.discard;
    this.#keep = keep;
  }

  async app(path: string): Promise<AppRef> {
    return { key: path, name: path };
  }

  async droplet(app: AppRef, request: DropletRequest): Promise<ResolvedDroplet> {
    const records = this.#store.droplets;
    const droplet = request.droplet === 'latest' ? await records.latest(this.#source, app.key) : await records.get(this.#source, app.key, request.droplet);
    if (droplet === undefined) {
      if ((await records.latest(this.#source, app.key)) === undefined) throw appUnknown(app);
      throw new RegistryError('MANIFEST_UNKNOWN', `app ${app.name} has no droplet ${request.droplet}`, { detail: { tag: request.droplet } });
    }
    return { droplet, command: commandOf(app, droplet, request.process), created: fixedCreated, process: {} };
  }

  async guids(app: AppRef): Promise<string[]> {
    const guids = await this.#store.droplets.guids(this.#source, app.key);
    if (guids.length === 0) throw appUnknown(app);
    return guids;
  }

  paths(page: Page): Promise<string[]> {
    return this.#store.droplets.apps(this.#source, page);
  }

  /**
   * Records an uploaded droplet under its guid. Guids are immutable, as in
   * Cloud Foundry: the same bytes again are accepted (nothing changes),
   * other bytes are refused with 409.
   */
  async receive(app: AppRef, guid: string, repository: RepositoryName, droplet: Readable, signal?: AbortSignal): Promise<StagedDroplet> {
    if (guid === 'latest') {
      throw new RegistryError('TAG_INVALID', '"latest" names the most recent droplet; give the droplet its own guid', { status: 400 });
    }
    if (guid.includes('.')) {
      throw new RegistryError('TAG_INVALID', `droplet guid "${guid}" contains ".", which separates a process type in tags (<guid>.<process>)`, { status: 400 });
    }
    const recorded = await this.#store.droplets.get(this.#source, app.key, guid);
    if (recorded !== undefined) {
      const hash = createHash('sha256');
      for await (const _chunk of through(droplet, new MeteredStream(hash))) {
        // Only the digest is needed: the droplet is converted already.
      }
      return sameOrConflict(app, guid, recorded, finishDigest(hash, 'sha256'));
    }
    const converted = await this.#convert(droplet, signal);
    const { dropletSize: _size, ...conversion } = converted;
    const staged: StagedDroplet = { ...conversion, guid, stagedAt: new Date() };
    const stored = await this.#store.droplets.put(this.#source, app.key, staged, await this.#record(repository, staged, signal), this.#keep);
    // Another upload of the same guid may have been recorded first (another replica, at the same moment).
    if (stored.dropletDigest !== converted.dropletDigest && stored.layer.digest !== converted.layer.digest) await this.#discard(converted.layer.digest);
    return sameOrConflict(app, guid, stored, converted.dropletDigest);
  }

  /** Forgets an uploaded droplet; `latest` then names the one before it. */
  async remove(app: AppRef, guid: string): Promise<void> {
    if (!(await this.#store.droplets.delete(this.#source, app.key, guid))) {
      throw new RegistryError('MANIFEST_UNKNOWN', `app ${app.name} has no droplet ${guid}`, { detail: { tag: guid } });
    }
  }
}

/** The command of `process`: the droplet's own (staging_info.yml's start_command is `web`). */
export function commandOf(app: AppRef, droplet: StagedDroplet, process: string): string | undefined {
  const command = droplet.processTypes[process];
  if (command === undefined && process !== 'web') {
    throw new RegistryError('MANIFEST_UNKNOWN', `droplet ${droplet.guid} of app ${app.name} has no process type ${process}`, {
      detail: { tag: `${droplet.guid}.${process}`, processTypes: Object.keys(droplet.processTypes).sort() },
    });
  }
  return command;
}

function sameOrConflict(app: AppRef, guid: string, recorded: StagedDroplet, uploaded: Digest): StagedDroplet {
  if (recorded.dropletDigest === uploaded) return recorded;
  throw new RegistryError(
    'DENIED',
    `droplet ${guid} of app ${app.name} was uploaded before with other bytes (${recorded.dropletDigest}); droplet guids are immutable: upload new bytes under a new guid`,
    { status: 409, detail: { guid, digest: recorded.dropletDigest, uploaded } },
  );
}

function appUnknown(app: AppRef): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `no droplet was uploaded for app ${app.name}`, { detail: { app: app.name } });
}
