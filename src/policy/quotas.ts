import type { QuotaConfig } from '../config/operations.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { RepositoryScope, Usage, UsageIndex } from '../meta/operations-store.ts';
import { exactScope } from './globs.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { repositoryScope, scopeMatcher } from './globs.ts';
import { UsageSnapshots, type UsageSnapshotOptions } from './usage-snapshots.ts';

/** One quota with what its repositories hold now, for the usage API and CLI. */
export interface QuotaUsage {
  name: string;
  repositories: readonly string[];
  usedBytes: number;
  maxBytes?: number;
  usedRepositories: number;
  maxRepositories?: number;
}

interface Quota {
  name: string;
  globs: readonly string[];
  scope: RepositoryScope;
  matches: (name: string) => boolean;
  maxBytes: number | undefined;
  maxRepositories: number | undefined;
}

/**
 * Storage quotas per repository glob. Every quota whose globs match a
 * repository applies to it; the repositories a quota matches share it
 * (bytes of distinct blobs plus manifests, and how many hold content).
 * Checked when a write is admitted: concurrent pushes may overshoot by what
 * they had in flight.
 */
export class Quotas {
  readonly #quotas: Quota[];
  readonly #usage: UsageIndex;
  readonly #sums: UsageSnapshots;

  constructor(rules: readonly QuotaConfig[], usage: UsageIndex, snapshots: UsageSnapshotOptions = {}) {
    this.#usage = usage;
    this.#sums = new UsageSnapshots(usage, snapshots);
    this.#quotas = rules.map((rule) => {
      const scope = repositoryScope(rule.repositories);
      return {
        name: rule.name ?? rule.repositories.join(', '),
        globs: rule.repositories,
        scope,
        matches: scopeMatcher(scope),
        maxBytes: rule.maxBytes,
        maxRepositories: rule.maxRepositories,
      };
    });
  }

  get configured(): boolean {
    return this.#quotas.length > 0;
  }

  /** Refuses a new upload into a repository whose quota is already full. */
  async admitUpload(repository: RepositoryName): Promise<void> {
    for (const quota of this.#applying(repository)) {
      await this.#checkRepositories(quota, repository);
      if (quota.maxBytes !== undefined) {
        const { bytes } = await this.#sums.usage(quota.scope);
        if (bytes >= quota.maxBytes) throw full(quota, bytes, `no room is left for uploads into ${repository}`);
      }
    }
  }

  /** Refuses a blob that would take a quota past its bytes (a blob its repositories already hold costs nothing). */
  async admitBlob(repository: RepositoryName, digest: Digest, size: number): Promise<void> {
    for (const quota of this.#applying(repository)) {
      await this.#checkRepositories(quota, repository);
      if (quota.maxBytes === undefined || (await this.#usage.holds(quota.scope, digest))) continue;
      await this.#checkBytes(quota, size, `blob ${digest} needs ${formatBytes(size)}`);
    }
  }

  async admitManifest(repository: RepositoryName, size: number, stored: boolean): Promise<void> {
    for (const quota of this.#applying(repository)) {
      await this.#checkRepositories(quota, repository);
      if (quota.maxBytes !== undefined && !stored) await this.#checkBytes(quota, size, `the manifest needs ${formatBytes(size)}`);
    }
  }

  /** Every quota's usage; with `visible`, counting only the repositories it accepts. */
  async report(visible?: (name: RepositoryName) => boolean): Promise<QuotaUsage[]> {
    return Promise.all(
      this.#quotas.map(async (quota) => {
        const usage = visible === undefined ? await this.#sums.usage(quota.scope) : await visibleUsage(this.#usage, quota.scope, visible);
        return {
          name: quota.name,
          repositories: quota.globs,
          usedBytes: usage.bytes,
          ...(quota.maxBytes === undefined ? {} : { maxBytes: quota.maxBytes }),
          usedRepositories: usage.repositories,
          ...(quota.maxRepositories === undefined ? {} : { maxRepositories: quota.maxRepositories }),
        };
      }),
    );
  }

  #applying(repository: RepositoryName): Quota[] {
    return this.#quotas.filter((quota) => quota.matches(repository));
  }

  async #checkRepositories(quota: Quota, repository: RepositoryName): Promise<void> {
    if (quota.maxRepositories === undefined || (await this.#usage.occupied(repository))) return;
    const { repositories } = await this.#sums.usage(quota.scope);
    if (repositories >= quota.maxRepositories) {
      throw new RegistryError('DENIED', `quota "${quota.name}" allows ${quota.maxRepositories} repositories and ${repositories} exist: ${repository} cannot be created`, {
        detail: { quota: quota.name, maxRepositories: quota.maxRepositories, repositories },
      });
    }
  }

  async #checkBytes(quota: Quota, size: number, what: string): Promise<void> {
    const { bytes } = await this.#sums.usage(quota.scope);
    if (bytes + size > (quota.maxBytes as number)) throw full(quota, bytes, what);
    this.#sums.admitted(quota.scope, size);
  }
}

function full(quota: Quota, used: number, what: string): RegistryError {
  const max = quota.maxBytes as number;
  return new RegistryError('DENIED', `quota "${quota.name}" is full: ${formatBytes(used)} of ${formatBytes(max)} used; ${what}`, {
    detail: { quota: quota.name, maxBytes: max, usedBytes: used },
  });
}

/** Bytes for people: 1.5 GiB, 300 MiB, 12 KiB, 512 B. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * What a scope's repositories hold; with `visible`, only those it accepts
 * count, so a caller learns nothing of the others, not even that they exist.
 */
export async function visibleUsage(index: UsageIndex, scope: RepositoryScope, visible?: (name: RepositoryName) => boolean): Promise<Usage> {
  if (visible === undefined) return index.usage(scope);
  const names = (await index.repositories(scope)).filter(visible);
  return names.length === 0 ? { bytes: 0, repositories: 0 } : index.usage(exactScope(names));
}
