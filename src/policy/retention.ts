import type { RetentionPolicyConfig } from '../config/operations.ts';
import type { Logger } from '../log.ts';
import { withChange, type ChangeLog } from '../meta/change-log.ts';
import type { OperationsStore, RepositoryContents } from '../meta/operations-store.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import { repositoryScope, scopeMatcher, tagMatcher } from './globs.ts';

/** What one repository loses under a policy. */
export interface RetentionPlan {
  tags: { tag: Tag; digest: Digest }[];
  /** In an order they can be deleted in: indexes before their children, subjects before their referrers. */
  manifests: { digest: Digest; size: number }[];
}

export interface RetentionReport {
  dryRun: boolean;
  repositories: number;
  tags: { repository: RepositoryName; tag: Tag; digest: Digest }[];
  manifests: { repository: RepositoryName; digest: Digest; size: number }[];
}

export interface RetentionRule {
  keepLatest?: number;
  keepTags: (tag: Tag) => boolean;
  keepPulledWithin?: number;
  untaggedOlderThan?: number;
  immutable: (tag: Tag) => boolean;
}

/**
 * The plan for one repository, a pure function of its contents. Tags kept:
 * the `keepLatest` most recently pushed (all, when unset), those matching
 * `keepTags`, immutable ones, and those whose manifest was pulled within
 * `keepPulledWithin`. Manifests kept: everything reachable (through index
 * children and referrer subjects) from kept tags, from recently pulled
 * manifests, and from untagged manifests that stand alone and are younger
 * than `untaggedOlderThan` (all of them, when unset). The rest goes.
 */
export function planRetention(rule: RetentionRule, contents: RepositoryContents, pulls: ReadonlyMap<Digest, Date>, now: Date): RetentionPlan {
  const pulledRecently = (digest: Digest) => {
    const at = pulls.get(digest);
    return rule.keepPulledWithin !== undefined && at !== undefined && now.getTime() - at.getTime() <= rule.keepPulledWithin;
  };
  const byRecency = [...contents.tags].sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime() || (a.tag < b.tag ? -1 : 1));
  const deletedTags = byRecency.filter(
    (tag, index) => rule.keepLatest !== undefined && index >= rule.keepLatest && !rule.keepTags(tag.tag) && !rule.immutable(tag.tag) && !pulledRecently(tag.digest),
  );
  const deleted = new Set(deletedTags.map((tag) => tag.tag));
  const keptTagged = new Set(contents.tags.filter((tag) => !deleted.has(tag.tag)).map((tag) => tag.digest));
  const everTagged = new Set(contents.tags.map((tag) => tag.digest));
  const listedAsChild = new Set(contents.manifests.flatMap((manifest) => manifest.children));
  const present = new Set(contents.manifests.map((manifest) => manifest.digest));
  const roots = new Set<Digest>(keptTagged);
  for (const manifest of contents.manifests) {
    if (pulledRecently(manifest.digest)) roots.add(manifest.digest);
    const standsAlone = !everTagged.has(manifest.digest) && !listedAsChild.has(manifest.digest) && (manifest.subject === undefined || !present.has(manifest.subject));
    const young = rule.untaggedOlderThan === undefined || now.getTime() - manifest.createdAt.getTime() < rule.untaggedOlderThan;
    if (standsAlone && young) roots.add(manifest.digest);
  }
  const reachable = closure(contents, roots);
  const doomed = contents.manifests.filter((manifest) => !reachable.has(manifest.digest));
  return { tags: deletedTags.map(({ tag, digest }) => ({ tag, digest })), manifests: deletionOrder(doomed, contents) };
}

/** Manifests reachable from `roots`: children of indexes, and referrers of reachable subjects. */
function closure(contents: RepositoryContents, roots: ReadonlySet<Digest>): Set<Digest> {
  const children = new Map(contents.manifests.map((manifest) => [manifest.digest, manifest.children]));
  const referrers = new Map<Digest, Digest[]>();
  for (const manifest of contents.manifests) {
    if (manifest.subject !== undefined) referrers.set(manifest.subject, [...(referrers.get(manifest.subject) ?? []), manifest.digest]);
  }
  const reached = new Set<Digest>();
  const queue = [...roots];
  for (let digest = queue.pop(); digest !== undefined; digest = queue.pop()) {
    if (reached.has(digest)) continue;
    reached.add(digest);
    queue.push(...(children.get(digest) ?? []), ...(referrers.get(digest) ?? []));
  }
  return reached;
}

/** Parents before children, subjects before referrers (what the store's re-check requires). */
function deletionOrder(doomed: RepositoryContents['manifests'], contents: RepositoryContents): RetentionPlan['manifests'] {
  const doomedSet = new Set(doomed.map((manifest) => manifest.digest));
  const blockers = new Map<Digest, Digest[]>();
  for (const manifest of contents.manifests) {
    for (const child of manifest.children) if (doomedSet.has(manifest.digest)) blockers.set(child, [...(blockers.get(child) ?? []), manifest.digest]);
    if (manifest.subject !== undefined && doomedSet.has(manifest.subject)) blockers.set(manifest.digest, [...(blockers.get(manifest.digest) ?? []), manifest.subject]);
  }
  const ordered: RetentionPlan['manifests'] = [];
  const placed = new Set<Digest>();
  let pending = [...doomed];
  while (pending.length > 0) {
    const ready = pending.filter((manifest) => (blockers.get(manifest.digest) ?? []).every((blocker) => placed.has(blocker) || !doomedSet.has(blocker)));
    // A cycle cannot be pushed (digests), but never loop forever on bad data.
    const next = ready.length > 0 ? ready : pending;
    for (const manifest of next) {
      ordered.push({ digest: manifest.digest, size: manifest.size });
      placed.add(manifest.digest);
    }
    pending = pending.filter((manifest) => !placed.has(manifest.digest));
  }
  return ordered;
}

export interface RetentionDependencies {
  operations: OperationsStore;
  /** Whether a tag is immutable in a repository (never deleted). */
  immutable: (repository: RepositoryName, tag: Tag) => boolean;
  logger: Logger;
  /** Events of each deletion, committed with it. */
  changes?: ChangeLog;
  /** Told after each deletion (metrics). */
  onTagDeleted?: (repository: RepositoryName, tag: Tag, digest: Digest) => void;
  onManifestDeleted?: (repository: RepositoryName, digest: Digest) => void;
}

/** The configured policies, applied repository by repository (the first policy matching a name governs it). */
export class Retention {
  readonly #policies: { config: RetentionPolicyConfig; matches: (name: string) => boolean }[];
  readonly #deps: RetentionDependencies;

  constructor(policies: readonly RetentionPolicyConfig[], dependencies: RetentionDependencies) {
    this.#deps = dependencies;
    this.#policies = policies.map((config) => ({ config, matches: scopeMatcher(repositoryScope(config.repositories)) }));
  }

  get configured(): boolean {
    return this.#policies.length > 0;
  }

  /** Whether pulls must be recorded (a policy keeps what was pulled recently). */
  get usesPulls(): boolean {
    return this.#policies.some((policy) => policy.config.keepPulledWithin !== undefined);
  }

  /** Applies every policy once; undefined when another replica is applying them. */
  async run(options: { dryRun: boolean }): Promise<RetentionReport | undefined> {
    const { operations, logger } = this.#deps;
    const lease = await operations.leases.acquire('retention');
    if (lease === undefined) return undefined;
    const report: RetentionReport = { dryRun: options.dryRun, repositories: 0, tags: [], manifests: [] };
    try {
      const seen = new Set<RepositoryName>();
      for (const [index, policy] of this.#policies.entries()) {
        for (const repository of await operations.usage.repositories(repositoryScope(policy.config.repositories))) {
          lease.signal.throwIfAborted();
          // The first policy matching a name governs it.
          if (seen.has(repository) || this.#policies.findIndex((each) => each.matches(repository)) !== index) continue;
          seen.add(repository);
          report.repositories++;
          await this.#apply(repository, policy.config, options.dryRun, report);
        }
      }
      const longest = Math.max(0, ...this.#policies.map((policy) => policy.config.keepPulledWithin ?? 0));
      if (!options.dryRun && longest > 0) await operations.pulls.prune(new Date(Date.now() - longest));
      logger.info({ dryRun: options.dryRun, repositories: report.repositories, tags: report.tags.length, manifests: report.manifests.length }, 'retention applied');
      return report;
    } finally {
      await lease.release();
    }
  }

  async #apply(repository: RepositoryName, config: RetentionPolicyConfig, dryRun: boolean, report: RetentionReport): Promise<void> {
    const { operations, changes } = this.#deps;
    const now = new Date();
    const contents = await operations.namespace.contents(repository);
    const pulls = config.keepPulledWithin === undefined ? new Map<Digest, Date>() : await operations.pulls.lastPulls(repository);
    const keepTags = tagMatcher(config.keepTags);
    const rule: RetentionRule = {
      keepTags,
      immutable: (tag) => this.#deps.immutable(repository, tag),
      ...(config.keepLatest === undefined ? {} : { keepLatest: config.keepLatest }),
      ...(config.keepPulledWithin === undefined ? {} : { keepPulledWithin: config.keepPulledWithin }),
      ...(config.untaggedOlderThan === undefined ? {} : { untaggedOlderThan: config.untaggedOlderThan }),
    };
    const plan = planRetention(rule, contents, pulls, now);
    for (const { tag, digest } of plan.tags) {
      // Only while unchanged since the plan: a tag pushed meanwhile stays.
      const deleted = (): Promise<boolean> =>
        withChange(
          changes,
          { kind: 'tag-deleted', repository, tag, digest, reason: 'retention' },
          (options) => operations.namespace.deleteTag(repository, tag, digest, now, options),
          (removed) => removed,
        );
      if (dryRun || (await deleted())) {
        report.tags.push({ repository, tag, digest });
        if (!dryRun) this.#deps.onTagDeleted?.(repository, tag, digest);
      }
    }
    for (const { digest, size } of plan.manifests) {
      // The store re-checks reachability; a manifest pushed or tagged since the plan stays.
      const deleted = async (): Promise<boolean> =>
        (await withChange(
          changes,
          { kind: 'manifest-deleted', repository, digest, reason: 'retention' },
          (options) => operations.namespace.deleteUnreachable({ repository, digest }, now, options),
          (freed) => freed !== undefined,
        )) !== undefined;
      if (dryRun || (await deleted())) {
        report.manifests.push({ repository, digest, size });
        if (!dryRun) this.#deps.onManifestDeleted?.(repository, digest);
      }
    }
  }
}
