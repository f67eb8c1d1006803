import type { Page } from '../meta/meta-store.ts';
import type { Digest } from '../oci/digest.ts';
import { parseRepositoryName, type RepositoryName } from '../oci/names.ts';
import type { Repository, RepositorySource } from './repository.ts';

export interface SourceRoute {
  /** Names starting with this prefix go to `source`; '' matches every name. */
  prefix: string;
  source: RepositorySource;
  /** Registries whose content this route mirrors, by the names clients give them in `?ns=` (containerd). */
  mirrors?: readonly string[];
}

/** Resolves a repository name to the source serving it: the longest matching prefix wins. */
export class RepositoryRouter {
  readonly #routes: SourceRoute[];
  readonly #mirrors = new Map<string, string>();

  constructor(routes: readonly SourceRoute[]) {
    this.#routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
    for (const route of routes) for (const mirrored of route.mirrors ?? []) this.#mirrors.set(mirrored.toLowerCase(), route.prefix);
  }

  /**
   * The name a request means when it names its registry with `?ns=`
   * (containerd's mirror convention: `GET /v2/library/alpine/manifests/3?ns=docker.io`):
   * under the prefix of the route mirroring that registry. Unknown
   * registries, and names that already carry the prefix, are left as they are.
   */
  mirrorName(name: RepositoryName, registry: string): RepositoryName {
    const prefix = this.#mirrors.get(registry.toLowerCase());
    if (prefix === undefined || prefix === '' || name.startsWith(prefix)) return name;
    return parseRepositoryName(`${prefix}${name}`);
  }

  sourceFor(name: RepositoryName): RepositorySource | undefined {
    return this.#routes.find((route) => name.startsWith(route.prefix))?.source;
  }

  async open(name: RepositoryName, signal?: AbortSignal): Promise<Repository | undefined> {
    return this.sourceFor(name)?.open(name, signal);
  }

  /**
   * One sorted page across every source. Each source is asked for a full
   * page after `last`; names a source lists but does not serve (a cache's
   * content listed by the hosted index, say) are listed once.
   */
  async catalog(page: Page, signal?: AbortSignal): Promise<RepositoryName[]> {
    const sources = [...new Set(this.#routes.map((route) => route.source))];
    const lists = await Promise.all(sources.map((source) => source.catalog(page, signal)));
    const merged = [...new Set(lists.flat())].sort(compareNames);
    return page.limit === undefined ? merged : merged.slice(0, page.limit);
  }

  /** Blobs that sources keep outside the MetaStore (see RepositorySource.retainedBlobs), for GC. */
  async *retainedBlobs(): AsyncIterable<Digest> {
    for (const source of new Set(this.#routes.map((route) => route.source))) {
      if (source.retainedBlobs !== undefined) yield* source.retainedBlobs();
    }
  }

  async close(): Promise<void> {
    const sources = [...new Set(this.#routes.map((route) => route.source))];
    await Promise.all(sources.map((source) => source.close?.()));
  }
}

/** Byte order, the order the catalog and tag lists use everywhere. */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
