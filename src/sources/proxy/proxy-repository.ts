import type { Readable } from 'node:stream';
import type { ByteRange } from '../../blobs/blob-store.ts';
import { isRegistryError, RegistryError } from '../../errors/registry-error.ts';
import type { ManifestRecord, Page } from '../../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../../oci/accept.ts';
import type { Digest } from '../../oci/digest.ts';
import { parseManifest, type Descriptor } from '../../oci/manifest.ts';
import { isIndexMediaType, isManifestMediaType } from '../../oci/media-types.ts';
import { referenceToString, type Reference, type RepositoryName, type Tag } from '../../oci/names.ts';
import { HostedRepository } from '../../registry/hosted.ts';
import { getManifest, platformChild } from '../../registry/manifests.ts';
import type { BlobBody, ManifestContent, Repository, RepositoryWriter } from '../../registry/repository.ts';
import { refusingWriter } from '../../registry/refusing-writer.ts';
import type { FetchedManifest } from '../../client/registry-client.ts';
import type { BlobFill } from './blob-fill.ts';
import type { ProxyState } from './proxy-state.ts';
import { cacheListedReferrers, cacheReferrers, isCosignTag } from './referrer-cache.ts';
import { isUpstreamNotFound, isUpstreamOutage, upstreamFailure } from './upstream-errors.ts';

/**
 * A repository of a pull-through cache. Whatever is cached is served from
 * hosted storage; what is not is fetched from upstream once (however many
 * clients ask at the same time), stored, and served while it is stored.
 * Tags are re-checked after the TTL; digests never are.
 */
export class ProxyRepository implements Repository {
  readonly name: RepositoryName;
  readonly writer: RepositoryWriter;
  readonly #upstreamName: RepositoryName;
  readonly #state: ProxyState;
  readonly #hosted: HostedRepository;

  constructor(name: RepositoryName, upstreamName: RepositoryName, state: ProxyState) {
    this.name = name;
    this.#upstreamName = upstreamName;
    this.#state = state;
    this.#hosted = new HostedRepository(name, state.hosted);
    this.writer = state.options.pushes ? this.#hosted : cacheWriter(name, state.upstream);
  }

  async manifest(reference: Reference, accept: MediaTypeAcceptance): Promise<ManifestContent> {
    // Twice at most: a cache's size budget may evict the manifest between the check and the read.
    for (let attempt = 0; ; attempt += 1) {
      const stored = await this.#ensureManifest(reference, attempt > 0);
      if (stored !== undefined) this.#followReferrers(stored, reference);
      try {
        return await this.#read(reference, accept);
      } catch (error) {
        if (attempt > 0 || !isRegistryError(error) || error.code !== 'MANIFEST_UNKNOWN' || (await this.#state.hosted.meta.manifests.get(this.name, reference)) !== undefined) {
          throw error;
        }
      }
    }
  }

  async #read(reference: Reference, accept: MediaTypeAcceptance): Promise<ManifestContent> {
    const { meta } = this.#state.hosted;
    try {
      return await getManifest(meta, this.name, reference, accept);
    } catch (error) {
      // An index, asked for by a client that takes no index: its linux/amd64 child, fetched if need be.
      const record = reference.kind === 'tag' ? await meta.manifests.get(this.name, reference) : undefined;
      const child = record !== undefined && isManifestMediaType(record.mediaType) && isIndexMediaType(record.mediaType) ? platformChild(record.bytes) : undefined;
      if (child === undefined) throw error;
      await this.#ensureManifest({ kind: 'digest', digest: child });
      return getManifest(meta, this.name, reference, accept);
    }
  }

  /** Caches a manifest (fetching it when absent or, for a tag, stale or `recheck`ed) and returns it; for pre-warming and referrers. */
  async cacheManifest(reference: Reference, recheck = false): Promise<ManifestRecord> {
    await this.#ensureManifest(reference, recheck);
    const record = await this.#state.hosted.meta.manifests.get(this.name, reference);
    if (record === undefined) throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${referenceToString(reference)} is not cached`);
    return record;
  }

  /** Caches a blob (waiting for its fill); for pre-warming and referrers. */
  async cacheBlob(digest: Digest): Promise<void> {
    if ((await this.#state.hosted.meta.blobs.linkedSize(this.name, digest)) !== undefined) return;
    const source = await this.#blobSource(digest);
    if (source.kind === 'filling') await source.fill.done;
  }

  async blobSize(digest: Digest): Promise<number> {
    const cached = await this.#state.hosted.meta.blobs.linkedSize(this.name, digest);
    if (cached !== undefined) {
      this.#state.counters.blob.hit();
      return cached;
    }
    this.#state.counters.blob.miss();
    const source = await this.#blobSource(digest);
    return source.kind === 'linked' ? source.size : source.fill.size.catch((error: unknown) => Promise.reject(upstreamFailure(error, this.#state.upstream, `blob ${digest}`)));
  }

  async openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody> {
    const linked = await this.#state.hosted.meta.blobs.linkedSize(this.name, digest);
    if (linked !== undefined) {
      try {
        const body = await this.#hosted.openBlob(digest, range, signal);
        this.#state.observer.servedFromCache(range === undefined ? linked : range.end - range.start + 1);
        return body;
      } catch (error) {
        // Evicted since the lookup: fetched again below.
        if (!isRegistryError(error) || error.code !== 'BLOB_UNKNOWN') throw error;
      }
    }
    const source = await this.#blobSource(digest);
    if (source.kind === 'filling') {
      let reader: Readable | undefined;
      try {
        reader = await source.fill.reader(range);
      } catch (error) {
        throw upstreamFailure(error, this.#state.upstream, `blob ${digest}`);
      }
      if (reader !== undefined) return { kind: 'stream', stream: reader };
      await source.fill.done;
    }
    return this.#hosted.openBlob(digest, range, signal);
  }

  async tags(page: Page, signal?: AbortSignal): Promise<Tag[]> {
    if (this.#state.holdBack() !== undefined) return this.#hosted.tags(page);
    try {
      const { tags } = await this.#state.client.tags(this.#upstreamName, page, signal);
      return tags;
    } catch (error) {
      if (!isUpstreamOutage(error)) throw upstreamFailure(error, this.#state.upstream, `repository ${this.#upstreamName}`);
      this.#state.servedStale(error, { repository: this.name, what: 'tag list' });
      return this.#hosted.tags(page);
    }
  }

  async referrers(subject: Digest, artifactType: string | undefined, signal?: AbortSignal): Promise<Descriptor[]> {
    if (this.#state.holdBack() === undefined) {
      try {
        const upstream = await this.#state.client.referrers(this.#upstreamName, subject, artifactType, signal);
        if (upstream !== undefined) {
          if (this.#state.options.referrers && upstream.length > 0) {
            this.#state.inBackground(() => cacheListedReferrers(this, upstream), { repository: this.name, subject });
          }
          return upstream;
        }
      } catch (error) {
        if (!isUpstreamOutage(error)) throw upstreamFailure(error, this.#state.upstream, `referrers of ${subject}`);
        this.#state.servedStale(error, { repository: this.name, what: 'referrers' });
      }
    }
    return this.#hosted.referrers(subject, artifactType);
  }

  /** After a manifest was fetched for a client: its signatures, SBOMs and attestations, in the background. */
  #followReferrers(digest: Digest, reference: Reference): void {
    if (!this.#state.options.referrers || (reference.kind === 'tag' && isCosignTag(reference.tag))) return;
    this.#state.inBackground(() => this.#state.flights.run(`referrers ${this.name}@${digest}`, () => cacheReferrers(this, this.#state, digest)), {
      repository: this.name,
      subject: digest,
    });
  }

  /** Makes sure the manifest is cached: digests once and for all, tags when stale (or `recheck`); the digest when it was fetched. */
  async #ensureManifest(reference: Reference, recheck = false): Promise<Digest | undefined> {
    const { meta } = this.#state.hosted;
    const cached = await meta.manifests.get(this.name, reference);
    if (reference.kind === 'digest') {
      if (cached !== undefined) {
        this.#state.counters.manifest.hit();
        return undefined;
      }
      this.#state.counters.manifest.miss();
      return this.#state.flights.run(`manifest ${this.name}@${reference.digest}`, async () => {
        if ((await meta.manifests.get(this.name, reference)) !== undefined) return undefined;
        return this.#store(await this.#fetchManifest(reference), []);
      });
    }
    const key = `${this.name}:${reference.tag}`;
    if (cached !== undefined && !recheck && this.#state.tagIsFresh(key)) {
      this.#state.counters.manifest.hit();
      return undefined;
    }
    return this.#state.flights.run(`tag ${key}`, () => this.#refreshTag(reference.tag, cached?.digest, key));
  }

  async #refreshTag(tag: Tag, cachedDigest: Digest | undefined, key: string): Promise<Digest | undefined> {
    const reference: Reference = { kind: 'tag', tag };
    // The upstream failed a moment ago, is rate-limiting, or nearly: serve what we have without asking.
    const holdBack = cachedDigest === undefined ? undefined : this.#state.holdBack();
    if (holdBack !== undefined) {
      this.#state.observer.staleServed(holdBack);
      this.#state.counters.manifest.hit();
      return undefined;
    }
    this.#refuseWhileBlocked(`manifest ${this.#upstreamName}:${tag}`);
    try {
      if (cachedDigest !== undefined) {
        // HEAD first: it tells whether the tag moved and does not count as a pull on Docker Hub.
        const head = await this.#state.client.headManifest(this.#upstreamName, reference);
        if (head === undefined) return await this.#tagGone(tag, key);
        if (head.digest === cachedDigest) {
          this.#state.tagChecked(key);
          this.#state.counters.manifest.hit();
          return undefined;
        }
      }
      this.#state.counters.manifest.miss();
      const stored = await this.#store(await this.#state.client.getManifest(this.#upstreamName, reference), [tag]);
      this.#state.tagChecked(key);
      return stored;
    } catch (error) {
      if (isUpstreamNotFound(error) && cachedDigest !== undefined) return await this.#tagGone(tag, key);
      if (cachedDigest === undefined || !isUpstreamOutage(error)) {
        if (isUpstreamOutage(error)) this.#state.noteFailure(error);
        throw upstreamFailure(error, this.#state.upstream, `manifest ${this.#upstreamName}:${tag}`, this.#state.rateLimit.retryAfterSeconds());
      }
      this.#state.servedStale(error, { repository: this.name, tag, served: cachedDigest }, true);
      return undefined;
    }
  }

  /**
   * The upstream has no such tag (any more): neither has the cache, and the
   * manifest stays pullable by digest. Where pushes are allowed, the tag may
   * have been pushed here and is kept.
   */
  async #tagGone(tag: Tag, key: string): Promise<undefined> {
    if (this.#state.options.pushes) {
      this.#state.tagChecked(key);
      return undefined;
    }
    await this.#state.hosted.meta.tags.delete(this.name, tag);
    throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${this.#upstreamName}:${tag} no longer exists at upstream ${this.#state.upstream}`);
  }

  /** Within a 429's Retry-After, uncached content is refused at once: asking again would only prolong the block. */
  #refuseWhileBlocked(what: string): void {
    const retryAfter = this.#state.rateLimit.blocked() ? this.#state.rateLimit.retryAfterSeconds() : undefined;
    if (retryAfter === undefined) return;
    throw new RegistryError('TOOMANYREQUESTS', `upstream ${this.#state.upstream} is rate-limiting this cache and ${what} is not cached; try again later`, {
      headers: { 'retry-after': String(retryAfter) },
    });
  }

  async #fetchManifest(reference: Reference): Promise<FetchedManifest> {
    this.#refuseWhileBlocked(`manifest ${this.#upstreamName}@${referenceToString(reference)}`);
    try {
      return await this.#state.client.getManifest(this.#upstreamName, reference);
    } catch (error) {
      if (isUpstreamOutage(error)) this.#state.noteFailure(error);
      throw upstreamFailure(error, this.#state.upstream, `manifest ${this.#upstreamName}@${referenceToString(reference)}`, this.#state.rateLimit.retryAfterSeconds());
    }
  }

  async #store(manifest: FetchedManifest, tags: Tag[]): Promise<Digest> {
    const parsed = parseManifest(manifest.bytes, manifest.mediaType);
    const record = { digest: manifest.digest, mediaType: parsed.mediaType, bytes: manifest.bytes, ...optional(parsed) };
    await this.#state.putCached(this.name, record, parsed, tags);
    return manifest.digest;
  }

  get upstreamName(): RepositoryName {
    return this.#upstreamName;
  }

  /**
   * Where a blob not linked here comes from: the store, when it holds the
   * blob for another repository and the upstream confirms this one has it
   * too (so one repository's blobs are not readable through another's
   * name); otherwise a fill from upstream, shared by concurrent requests.
   */
  async #blobSource(digest: Digest): Promise<{ kind: 'linked'; size: number } | { kind: 'filling'; fill: BlobFill }> {
    const state = this.#state;
    const running = state.fills.get(digest);
    if (running !== undefined) {
      running.repositories.add(this.name);
      return { kind: 'filling', fill: running };
    }
    let stored = await state.hosted.meta.blobs.storedSize(digest);
    if (stored !== undefined && state.hosted.policy?.protect !== undefined) {
      // Keeps garbage collection off the blob from here on; it may have gone just before.
      await state.hosted.policy.protect([digest]);
      stored = await state.hosted.meta.blobs.storedSize(digest);
    }
    if (stored !== undefined) {
      const upstreamSize = await state.client.statBlob(this.#upstreamName, digest).catch((error: unknown) => {
        throw upstreamFailure(error, state.upstream, `blob ${digest}`);
      });
      if (upstreamSize === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob ${digest} is not in ${this.#upstreamName} upstream`, { detail: { digest } });
      await state.hosted.meta.blobs.link(this.name, digest, stored);
      return { kind: 'linked', size: stored };
    }
    const fill = state.fills.start(digest, this.name, (offset, size) => this.#openUpstream(digest, offset, size));
    return { kind: 'filling', fill };
  }

  async #openUpstream(digest: Digest, offset: number, size: number | undefined): Promise<{ stream: Readable; total: number | undefined }> {
    const range = offset > 0 && size !== undefined ? { start: offset, end: size - 1 } : undefined;
    const { stream, total } = await this.#state.client.openBlob(this.#upstreamName, digest, range, { signal: this.#state.signal });
    return { stream, total };
  }
}

function optional(parsed: ReturnType<typeof parseManifest>): { subject?: Digest; artifactType?: string; annotations?: Record<string, string> } {
  return {
    ...(parsed.subject === undefined ? {} : { subject: parsed.subject }),
    ...(parsed.artifactType === undefined ? {} : { artifactType: parsed.artifactType }),
    ...(parsed.annotations === undefined ? {} : { annotations: parsed.annotations }),
  };
}

/** Every write answered with the reason: this prefix is a cache, and where it caches from. */
function cacheWriter(name: RepositoryName, upstream: string): RepositoryWriter {
  return refusingWriter(
    () =>
      new RegistryError(
        'UNSUPPORTED',
        `${name} is in a pull-through cache of ${upstream}: pushes and deletes are refused here (push to the upstream, or set pushes: true for this prefix)`,
        { detail: { name, upstream } },
      ),
  );
}
