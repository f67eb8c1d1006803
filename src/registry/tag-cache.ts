import type { MetaStore, Page } from '../meta/meta-store.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';

interface Entry {
  version: string;
  tags: Tag[];
}

/**
 * Whole tag lists of repositories, kept in memory and revalidated on every
 * request against the store's tag version (one indexed lookup), so a page of
 * a 10,000-tag list costs no scan. Correct across replicas: any change made
 * anywhere changes the version. Bounded by the number of tags held.
 */
export class TagListCache {
  readonly #entries = new Map<RepositoryName, Entry>();
  readonly #maxTags: number;
  #held = 0;

  constructor(maxTags = 250_000) {
    this.#maxTags = maxTags;
  }

  /** A sorted page of the repository's tags; undefined when the repository does not exist. */
  async page(meta: MetaStore, repository: RepositoryName, page: Page): Promise<Tag[] | undefined> {
    const currentVersion = meta.tags.version;
    if (currentVersion === undefined) return meta.tags.list(repository, page);
    const version = await currentVersion.call(meta.tags, repository);
    if (version === undefined) return undefined;
    let entry = this.#entries.get(repository);
    if (entry?.version !== version) {
      // Read after the version: the list is at least as new as the version it is kept under.
      entry = { version, tags: await meta.tags.list(repository, {}) };
      this.#remember(repository, entry);
    } else {
      // Most recently used last, so eviction takes the least recently used.
      this.#entries.delete(repository);
      this.#entries.set(repository, entry);
    }
    const start = page.last === undefined ? 0 : firstAfter(entry.tags, page.last);
    return entry.tags.slice(start, page.limit === undefined ? undefined : start + page.limit);
  }

  #remember(repository: RepositoryName, entry: Entry): void {
    this.#forget(repository);
    if (entry.tags.length > this.#maxTags) return;
    for (const [name, old] of this.#entries) {
      if (this.#held + entry.tags.length <= this.#maxTags) break;
      this.#entries.delete(name);
      this.#held -= old.tags.length;
    }
    this.#entries.set(repository, entry);
    this.#held += entry.tags.length;
  }

  #forget(repository: RepositoryName): void {
    const old = this.#entries.get(repository);
    if (old === undefined) return;
    this.#entries.delete(repository);
    this.#held -= old.tags.length;
  }
}

/** Index of the first tag sorting after `last` (byte order, as the stores sort). */
function firstAfter(tags: readonly string[], last: string): number {
  let low = 0;
  let high = tags.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((tags[middle] as string) <= last) low = middle + 1;
    else high = middle;
  }
  return low;
}
