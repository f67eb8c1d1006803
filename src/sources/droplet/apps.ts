import type { Readable } from 'node:stream';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Page } from '../../meta/meta-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { Tag } from '../../oci/names.ts';
import type { DropletIndex, StagedDroplet } from './droplet-index.ts';

/** An app as a droplet repository names it. */
export interface AppRef {
  /** Key of the app's droplets in the index (the path, or the Cloud Controller's app guid). */
  key: string;
  /** The app's name for labels: `<space>/<app>`, or the Cloud Controller's app name. */
  name: string;
  guid?: string;
}

/** A droplet ready to compose: its layer, and the command the app starts with. */
export interface ResolvedDroplet {
  droplet: StagedDroplet;
  startCommand: string | undefined;
}

/**
 * Where a droplet repository's apps and droplets come from: uploads kept
 * in the index, or a Cloud Controller.
 */
export interface AppDirectory {
  /** The app a repository path (the name without the prefix) designates; NAME_UNKNOWN when none. */
  app(path: string, signal?: AbortSignal): Promise<AppRef>;
  /** The droplet `latest` (the current one) or `<droplet guid>` names; MANIFEST_UNKNOWN when none. */
  droplet(app: AppRef, tag: Tag, signal?: AbortSignal): Promise<ResolvedDroplet>;
  /** Droplet guids of the app, sorted. */
  guids(app: AppRef, signal?: AbortSignal): Promise<string[]>;
  /** App paths to list in the catalog, sorted. */
  paths(page: Page): Promise<string[]>;
  /** Present when droplets are uploaded rather than fetched. */
  receive?(app: AppRef, guid: Tag, droplet: Readable, signal?: AbortSignal): Promise<Digest>;
}

/** Converts an uploaded droplet and records it; injected so that the directory stays free of storage. */
export type DropletConverter = (droplet: Readable, signal?: AbortSignal) => Promise<Omit<StagedDroplet, 'guid' | 'stagedAt'>>;

/** Apps whose droplets are uploaded (the cube registry's way): everything is in the index. */
export class UploadedApps implements AppDirectory {
  readonly #source: string;
  readonly #index: DropletIndex;
  readonly #convert: DropletConverter;
  readonly #keep: number;

  constructor(source: string, index: DropletIndex, convert: DropletConverter, keep: number) {
    this.#source = source;
    this.#index = index;
    this.#convert = convert;
    this.#keep = keep;
  }

  async app(path: string): Promise<AppRef> {
    return { key: path, name: path };
  }

  async droplet(app: AppRef, tag: Tag): Promise<ResolvedDroplet> {
    const droplet =
      tag === 'latest' ? await this.#index.droplets.latest(this.#source, app.key) : await this.#index.droplets.get(this.#source, app.key, tag);
    if (droplet === undefined) {
      if ((await this.#index.droplets.latest(this.#source, app.key)) === undefined) throw appUnknown(app);
      throw new RegistryError('MANIFEST_UNKNOWN', `app ${app.name} has no droplet ${tag}`, { detail: { tag } });
    }
    return { droplet, startCommand: droplet.startCommand };
  }

  async guids(app: AppRef): Promise<string[]> {
    const guids = await this.#index.droplets.guids(this.#source, app.key);
    if (guids.length === 0) throw appUnknown(app);
    return guids;
  }

  paths(page: Page): Promise<string[]> {
    return this.#index.droplets.apps(this.#source, page);
  }

  async receive(app: AppRef, guid: Tag, droplet: Readable, signal?: AbortSignal): Promise<Digest> {
    if (guid === 'latest') {
      throw new RegistryError('TAG_INVALID', '"latest" names the most recent droplet; give the droplet its own guid', { status: 400 });
    }
    const converted = await this.#convert(droplet, signal);
    await this.#index.droplets.put(this.#source, app.key, { ...converted, guid, stagedAt: new Date() }, this.#keep);
    return converted.layer.digest;
  }
}

function appUnknown(app: AppRef): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `no droplet was uploaded for app ${app.name}`, { detail: { app: app.name } });
}
