import { readFile } from 'node:fs/promises';
import { authFileCredentials, firstOf, noCredentials, type CredentialSource } from '../../client/credentials.ts';
import { RegistryClient } from '../../client/registry-client.ts';
import type { ProxyRepositoryConfig } from '../../config/repositories.ts';
import type { Logger } from '../../log.ts';
import { parseRepositoryName, type RepositoryName, type Tag } from '../../oci/names.ts';
import type { HostedContext } from '../../registry/hosted.ts';
import type { Repository, RepositorySource } from '../../registry/repository.ts';
import type { CacheCounter } from '../../registry/cache-metrics.ts';
import type { ProxyObserver } from '../../metrics/proxy-metrics.ts';
import { ProxyRepository } from './proxy-repository.ts';
import { dockerHubHosts } from './namespaces.ts';
import { ProxyState } from './proxy-state.ts';
import type { UpstreamNews } from './rate-limit.ts';
import type { PeerChannel } from '../../io/peers.ts';

/**
 * A pull-through cache of one upstream registry, serving the names under a
 * prefix. Cached content is ordinary hosted content under the local name,
 * so listings and GC treat it like anything pushed.
 */
export class ProxySource implements RepositorySource {
  readonly #prefix: string;
  readonly #officialImages: boolean;
  readonly #state: ProxyState;

  constructor(
    config: ProxyRepositoryConfig,
    context: {
      hosted: HostedContext;
      logger: Logger;
      spoolDir: string;
      counters?: { manifest: CacheCounter; blob: CacheCounter };
      observer?: ProxyObserver;
      /** Called when a blob was stored (the size budget may want checking). */
      onStored?: () => void;
      /** What the other workers' copies of this cache learn about the upstream, and what this one tells them. */
      news?: PeerChannel<UpstreamNews>;
    },
  ) {
    const upstream = new URL(config.upstream);
    let state: ProxyState | undefined;
    const client = new RegistryClient({
      host: upstream.host,
      baseUrl: upstream.origin,
      credentials: credentialsFor(config),
      // Few, quick retries: a client is waiting, and the cache can answer when the upstream cannot.
      // A 429 is not waited out: the cache serves what it has, or tells the client when to come back.
      retry: { attempts: 2, baseDelayMs: 100, maxDelayMs: 1000, retryRateLimited: false },
      timeoutMs: config.timeout,
      userAgent: 'berth-proxy',
      onResponse: (response, sentAt) => state?.sawResponse(response, sentAt),
    });
    this.#prefix = config.prefix;
    this.#officialImages = config.officialImages ?? dockerHubHosts.has(upstream.hostname);
    state = new ProxyState({
      client,
      hosted: context.hosted,
      proxy: {
        tagTtlMs: config.tagTtl,
        failureBackoffMs: config.failureBackoff,
        pushes: config.pushes,
        referrers: config.referrers,
        rateLimitReserve: config.rateLimitReserve,
      },
      logger: context.logger.child({ proxy: config.prefix, upstream: upstream.origin }),
      spoolDir: context.spoolDir,
      idleTimeoutMs: config.timeout,
      ...(context.counters === undefined ? {} : { counters: context.counters }),
      ...(context.observer === undefined ? {} : { observer: context.observer }),
      ...(context.onStored === undefined ? {} : { onStored: context.onStored }),
      ...(context.news === undefined ? {} : { news: context.news }),
    });
    this.#state = state;
    this.prefix = config.prefix;
  }

  readonly prefix: string;

  /** The cache's repository for a local name, unwrapped (pre-warming caches through it without counting pulls). */
  repository(name: RepositoryName): ProxyRepository {
    return new ProxyRepository(name, this.upstreamName(name), this.#state);
  }

  get state(): ProxyState {
    return this.#state;
  }

  async open(name: RepositoryName): Promise<Repository> {
    return this.repository(name);
  }

  /** Cached repositories are listed by the hosted index; the upstream's catalog is not ours to list. */
  async catalog(): Promise<RepositoryName[]> {
    return [];
  }

  async close(): Promise<void> {
    await this.#state.close();
  }

  /** Where a cached repository comes from and when its tag was last checked there (the web UI shows it). */
  upstreamOf(name: RepositoryName, tag?: Tag): { upstream: string; repository: RepositoryName; checkedAt?: Date } {
    const checkedAt = tag === undefined ? undefined : this.#state.tagCheckedAt(`${name}:${tag}`);
    return { upstream: this.#state.upstream, repository: this.upstreamName(name), ...(checkedAt === undefined ? {} : { checkedAt }) };
  }

  /** The name upstream: the prefix removed, and `library/` added for Docker Hub's official images. */
  upstreamName(name: RepositoryName): RepositoryName {
    const rest = name.slice(this.#prefix.length);
    return parseRepositoryName(this.#officialImages && !rest.includes('/') ? `library/${rest}` : rest);
  }
}

function credentialsFor(config: ProxyRepositoryConfig): CredentialSource {
  const sources: CredentialSource[] = [];
  if (config.username !== undefined) {
    const username = config.username;
    let password: Promise<string> | undefined;
    // A password file is read when first needed (and once), so a rotated secret needs a restart.
    const readPassword = async (): Promise<string> => {
      if (config.passwordFile === undefined) return config.password ?? '';
      try {
        return (await readFile(config.passwordFile, 'utf8')).replace(/\r?\n$/, '');
      } catch (error) {
        throw new Error(`repositories: proxy "${config.prefix}": cannot read passwordFile ${config.passwordFile}: ${(error as Error).message}`, { cause: error });
      }
    };
    sources.push({
      lookup: async () => ({ kind: 'basic', username, password: await (password ??= readPassword()) }),
    });
  }
  if (config.authFile !== undefined) sources.push(authFileCredentials([config.authFile]));
  return sources.length === 0 ? noCredentials : firstOf(...sources);
}
