import type { Digest } from '../../oci/digest.ts';
import { tryParseDigest } from '../../oci/digest.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { isTag, type Tag } from '../../oci/names.ts';
import { LocationError } from '../location.ts';
import { EngineClient, readText, daemonFailure } from './engine-client.ts';
import { chainIdsOf } from './image-export.ts';

/** What the daemon says about an image (`GET /images/{name}/json`). */
export interface DaemonImage {
  /** The image ID: its config's digest. */
  id: Digest;
  diffIds: Digest[];
  repoTags: string[];
}

/**
 * The local Docker Engine (or podman's API service) as a place images are
 * copied from and into: `docker-daemon:NAME[:TAG]`. It is not an
 * ImageStore: a daemon trades whole images (an export, a load), never a
 * blob at a time, so copies to and from it have their own paths
 * (from-daemon.ts, into-daemon.ts).
 */
export class DockerDaemon {
  readonly description: string;
  readonly client: EngineClient;
  /** The repository part of the location, as `docker images` shows it. */
  readonly name: string;

  #imageStoreChecked: Promise<void> | undefined;

  constructor(host: string, name: string) {
    this.client = new EngineClient(host);
    this.name = name;
    this.description = `docker-daemon:${name} (${host})`;
  }

  /**
   * Refuses a Docker Engine that keeps images in containerd's image store
   * (the default of new Docker 29 installs): there an image ID is the
   * manifest's digest, not the config's, and exports carry the compressed
   * registry blobs, neither of which this transport reads or writes. Asked
   * once per daemon.
   */
  checkImageStore(signal?: AbortSignal): Promise<void> {
    this.#imageStoreChecked ??= (async () => {
      const info = await this.client.json<{ DriverStatus?: unknown }>('/info', signal);
      const status = Array.isArray(info?.DriverStatus) ? (info.DriverStatus as unknown[]) : [];
      const containerdStore = status.some((pair) => Array.isArray(pair) && pair[0] === 'driver-type' && pair[1] === 'io.containerd.snapshotter.v1');
      if (containerdStore) {
        throw new LocationError(
          `docker-daemon: the Docker Engine at ${this.client.host} keeps images in containerd's image store, which docker-daemon: does not support yet; ` +
            'go through a file instead (docker save, then docker-archive:FILE; or docker-archive:FILE, then docker load), ' +
            'or run the engine with its classic image store ("features": {"containerd-snapshotter": false} in daemon.json)',
        );
      }
    })();
    return this.#imageStoreChecked;
  }

  /** The image NAME:TAG (or an image ID), or undefined when the daemon has none. */
  async inspect(reference: string, signal?: AbortSignal): Promise<DaemonImage | undefined> {
    const answer = await this.client.json<{ Id?: string; RootFS?: { Layers?: string[] }; RepoTags?: string[] | null }>(`/images/${encodeURIComponent(reference)}/json`, signal);
    if (answer === undefined) return undefined;
    const id = tryParseDigest(answer.Id ?? '');
    const diffIds = (answer.RootFS?.Layers ?? []).map((layer) => tryParseDigest(layer));
    if (id === undefined || diffIds.some((diffId) => diffId === undefined)) {
      throw new RegistryError('MANIFEST_INVALID', `docker-daemon: ${reference}: the daemon describes it without an image ID or layer digests`);
    }
    return { id, diffIds: diffIds as Digest[], repoTags: answer.RepoTags ?? [] };
  }

  /** The image NAME:TAG, or a MANIFEST_UNKNOWN error saying which daemon lacks it. */
  async require(tag: Tag, signal?: AbortSignal): Promise<DaemonImage> {
    await this.checkImageStore(signal);
    const image = await this.inspect(`${this.name}:${tag}`, signal);
    if (image === undefined) {
      throw new RegistryError('MANIFEST_UNKNOWN', `docker-daemon: the daemon at ${this.client.host} has no image ${this.name}:${tag}`, {
        detail: { reference: `${this.name}:${tag}` },
      });
    }
    return image;
  }

  /** Tags of this name in the daemon, however the engine spells the name (`app`, `docker.io/library/app`, `localhost/app`). */
  async listTags(signal?: AbortSignal): Promise<Tag[]> {
    const images = (await this.client.json<{ RepoTags?: string[] | null }[]>('/images/json', signal)) ?? [];
    const names = new Set([this.name, `docker.io/${this.name}`, `docker.io/library/${this.name}`, `localhost/${this.name}`]);
    const tags = images
      .flatMap((image) => image.RepoTags ?? [])
      .flatMap((repoTag) => {
        const colon = repoTag.lastIndexOf(':');
        if (colon <= repoTag.lastIndexOf('/')) return [];
        const tag = repoTag.slice(colon + 1);
        return names.has(repoTag.slice(0, colon)) && isTag(tag) ? [tag] : [];
      });
    return [...new Set(tags)].sort();
  }

  /** Gives an image present in the daemon the name NAME:TAG. */
  async tag(id: Digest, tag: Tag, signal?: AbortSignal): Promise<void> {
    const query = new URLSearchParams({ repo: this.name, tag });
    const response = await this.client.send('POST', `/images/${encodeURIComponent(id)}/tag?${query}`, { signal });
    const text = await readText(response);
    if (response.statusCode !== 201 && response.statusCode !== 200) throw daemonFailure(this.client.host, `tagging ${id} as ${this.name}:${tag}`, response.statusCode, text);
  }

  /**
   * The chain IDs of every layer stack the daemon's images have, which
   * Docker's load does not need sent again. Empty for podman, whose load
   * wants every layer file in the archive.
   */
  async layerChains(signal?: AbortSignal): Promise<Set<string>> {
    const chains = new Set<string>();
    if (/podman/i.test((await this.client.version(signal)).engine)) return chains;
    const images = (await this.client.json<{ Id?: string }[]>('/images/json', signal)) ?? [];
    for (const { Id } of images) {
      const image = Id === undefined ? undefined : await this.inspect(Id, signal).catch(() => undefined);
      for (const chain of chainIdsOf(image?.diffIds ?? [])) chains.add(chain);
    }
    return chains;
  }

  async close(): Promise<void> {}
}
