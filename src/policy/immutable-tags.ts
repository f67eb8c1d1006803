import type { ImmutableTagRule } from '../config/operations.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { MetaStore } from '../meta/meta-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import { repositoryScope, scopeMatcher, tagMatcher } from './globs.ts';

interface Rule {
  describe: string;
  repository: (name: string) => boolean;
  tag: (tag: string) => boolean;
}

/**
 * Tags that never move once pushed, per repository glob: pushing the same
 * manifest again is fine, pointing the tag elsewhere or deleting it (or the
 * manifest it names) is refused with DENIED naming the rule.
 */
export class ImmutableTags {
  readonly #rules: Rule[];
  readonly #meta: MetaStore;

  constructor(rules: readonly ImmutableTagRule[], meta: MetaStore) {
    this.#meta = meta;
    this.#rules = rules.map((rule, index) => ({
      describe: `immutableTags[${index}] (repositories ${rule.repositories.join(', ')}; tags ${rule.tags.join(', ')})`,
      repository: scopeMatcher(repositoryScope(rule.repositories)),
      tag: tagMatcher(rule.tags),
    }));
  }

  get configured(): boolean {
    return this.#rules.length > 0;
  }

  /** The rule that makes `tag` immutable in `repository`, if any. */
  ruleFor(repository: RepositoryName, tag: Tag): string | undefined {
    return this.#rules.find((rule) => rule.repository(repository) && rule.tag(tag))?.describe;
  }

  /** The tags among `tags` that must not move; refuses at once when one already names another manifest. */
  async admitManifest(repository: RepositoryName, digest: Digest, tags: readonly Tag[]): Promise<Tag[]> {
    const fixed = tags.filter((tag) => this.ruleFor(repository, tag) !== undefined);
    for (const tag of fixed) {
      const current = await this.#meta.manifests.get(repository, { kind: 'tag', tag });
      if (current !== undefined && current.digest !== digest) {
        throw new RegistryError('DENIED', `tag ${tag} is immutable (${this.ruleFor(repository, tag)}): it names ${current.digest} and cannot be moved`, {
          detail: { tag, digest: current.digest },
        });
      }
    }
    return fixed;
  }

  async admitDelete(repository: RepositoryName, reference: Reference): Promise<void> {
    if (reference.kind === 'tag') {
      const rule = this.ruleFor(repository, reference.tag);
      if (rule !== undefined) throw new RegistryError('DENIED', `tag ${reference.tag} is immutable (${rule}) and cannot be deleted`, { detail: { tag: reference.tag } });
      return;
    }
    if (!this.#rules.some((rule) => rule.repository(repository))) return;
    // Deleting a manifest deletes its tags: refused while an immutable one names it.
    for (let last: string | undefined; ; ) {
      const tags = await this.#meta.tags.list(repository, last === undefined ? { limit: 1000 } : { last, limit: 1000 });
      for (const tag of tags.filter((each) => this.ruleFor(repository, each) !== undefined)) {
        const current = await this.#meta.manifests.get(repository, { kind: 'tag', tag });
        if (current?.digest === reference.digest) {
          throw new RegistryError('DENIED', `manifest ${reference.digest} is tagged ${tag}, which is immutable (${this.ruleFor(repository, tag)}); it cannot be deleted`, {
            detail: { tag, digest: reference.digest },
          });
        }
      }
      if (tags.length < 1000) return;
      last = tags[tags.length - 1];
    }
  }
}
