import type { Digest } from '../oci/digest.ts';
import { isIndexMediaType, isManifestMediaType, mediaTypes } from '../oci/media-types.ts';
import type { Tag } from '../oci/names.ts';
import { copyImage, copyReferrersOf, type CopyEvent, type CopyOptions } from './copy-image.ts';
import { mirrorRegistry, wholeRegistry } from './mirror.ts';
import { classifyFailure, copyExitCodes } from './exit-codes.ts';
import type { ImageStore } from './image-store.ts';
import { describeLocation, LocationError, parseLocation, type Location } from './location.ts';
import { dockerToOciManifest } from './oci-conversion.ts';
import { openEndpoint, type Endpoint, type StoreOptions } from './open-store.ts';
import { DockerDaemon } from './daemon/docker-daemon.ts';
import { copyFromDaemon } from './daemon/from-daemon.ts';
import { copyIntoDaemon } from './daemon/into-daemon.ts';
import { choosePlatform, hostPlatform } from './platform.ts';
import type { Reporter } from './progress.ts';

export interface TransferOptions extends Omit<CopyOptions, 'onEvent' | 'compressUncompressed'> {
  source: StoreOptions;
  destination: StoreOptions;
  reporter: Reporter;
}

/** `berth copy SOURCE DESTINATION`: one image (or index); resolves to the exit code. */
export async function runCopy(sourceText: string, destinationText: string, options: TransferOptions): Promise<number> {
  return withStores(sourceText, destinationText, options, async (source, destination, sourceStore, destinationStore) => {
    const tag = destination.reference?.kind === 'tag' ? destination.reference.tag : destination.reference === undefined ? sourceTag(source) : undefined;
    await copyOne(source, destination, sourceStore, destinationStore, tag, options);
    return copyExitCodes.ok;
  });
}

export interface SyncOptions extends TransferOptions {
  /** Only tags matching this (the whole tag). */
  tags?: RegExp;
  /** A whole registry: only repositories matching one of these globs (default all). */
  include?: readonly string[];
  /** A whole registry: never repositories matching one of these globs. */
  exclude?: readonly string[];
}

/**
 * `berth sync SOURCE DESTINATION`: every tag of a repository (or those
 * matching `tags`), each under its own name. Tags whose destination already
 * holds what would be written are skipped; one tag failing does not stop
 * the others.
 */
export async function runSync(sourceText: string, destinationText: string, options: SyncOptions): Promise<number> {
  const registry = wholeRegistry(sourceText);
  if (registry !== undefined) return mirrorRegistry(registry, destinationText, options, runSync);
  return withStores(sourceText, destinationText, options, async (source, destination, sourceStore, destinationStore) => {
    if (source.reference !== undefined || destination.reference !== undefined) {
      throw new LocationError('sync copies whole repositories: name them without a tag or digest (use `berth copy` for one image)');
    }
    const tags = (await sourceStore.listTags(options.signal)).filter((tag) => options.tags === undefined || options.tags.test(tag));
    const totals = { images: tags.length, copied: 0, upToDate: 0, failed: 0 };
    let firstFailure: number | undefined;
    for (const tag of tags) {
      if (options.signal?.aborted === true) break;
      const from = { ...source, reference: { kind: 'tag' as const, tag } };
      const to = { ...destination, reference: { kind: 'tag' as const, tag } };
      try {
        if (!(sourceStore instanceof DockerDaemon) && !(destinationStore instanceof DockerDaemon)) {
          const current = await upToDate(sourceStore, destinationStore, tag, options, source);
          if (current !== undefined) {
            // The image is there; signatures made since still travel.
            if (options.referrers !== false) await copyReferrersOf(sourceStore, destinationStore, current, { ...options, onEvent: (event) => options.reporter.report(event) });
            totals.upToDate += 1;
            options.reporter.report({ event: 'image-up-to-date', source: label(from), destination: label(to), digest: current });
            continue;
          }
        }
        // Daemons say themselves whether an image is there already.
        if ((await copyOne(from, to, sourceStore, destinationStore, tag, options)) === 'up-to-date') totals.upToDate += 1;
        else totals.copied += 1;
      } catch (error) {
        totals.failed += 1;
        const exitCode = reportFailure(options.reporter, from, to, error);
        firstFailure ??= exitCode;
      }
    }
    options.reporter.report({ event: 'sync-done', ...totals });
    if (options.signal?.aborted === true) return copyExitCodes.interrupted;
    if (totals.failed === 0) return copyExitCodes.ok;
    return totals.copied + totals.upToDate > 0 ? copyExitCodes.partial : (firstFailure ?? copyExitCodes.failure);
  });
}

async function withStores(
  sourceText: string,
  destinationText: string,
  options: TransferOptions,
  work: (source: Location, destination: Location, sourceStore: Endpoint, destinationStore: Endpoint) => Promise<number>,
): Promise<number> {
  let source: Location | undefined;
  let destination: Location | undefined;
  const opened: Endpoint[] = [];
  try {
    source = parseLocation(sourceText);
    destination = parseLocation(destinationText);
    const sourceStore = await openEndpoint(source, options.source, options.signal);
    opened.push(sourceStore);
    const defaultName = familiarName(source);
    const destinationStore = await openEndpoint(destination, defaultName === undefined ? options.destination : { ...options.destination, defaultName }, options.signal);
    opened.push(destinationStore);
    return await work(source, destination, sourceStore, destinationStore);
  } catch (error) {
    return reportFailure(options.reporter, source, destination, error, sourceText, destinationText);
  } finally {
    for (const store of opened) await store.close().catch(() => undefined);
  }
}

/** Copies one image; resolves to whether anything had to be written. */
async function copyOne(
  source: Location,
  destination: Location,
  sourceStore: Endpoint,
  destinationStore: Endpoint,
  tag: Tag | undefined,
  options: TransferOptions,
): Promise<'copied' | 'up-to-date'> {
  const { reporter } = options;
  const from = label(source);
  const to = label(destination);
  reporter.report({ event: 'image-started', source: from, destination: to });
  const copyOptions = { ...options, onEvent: (event: CopyEvent) => reporter.report(event) };
  if (sourceStore instanceof DockerDaemon) {
    if (destinationStore instanceof DockerDaemon) throw new LocationError('docker-daemon to docker-daemon: copy through a remote (a directory, a bucket, a registry) instead');
    if (options.compress !== undefined)
      throw new LocationError('--dest-compress: layers leave a daemon as plain tars and are stored so; it does not apply to docker-daemon: sources');
    const sourceTag = source.reference?.kind === 'tag' ? source.reference.tag : ('latest' as Tag);
    const result = await copyFromDaemon(sourceStore, sourceTag, destinationStore, tag ?? sourceTag, copyOptions);
    if ('upToDate' in result) {
      reporter.report({ event: 'image-up-to-date', source: from, destination: to, digest: result.digest });
      return 'up-to-date';
    }
    reporter.report({ event: 'image-copied', source: from, destination: to, ...result });
    return 'copied';
  }
  if (destinationStore instanceof DockerDaemon) {
    const result = await copyIntoDaemon(sourceStore, source.reference, destinationStore, tag ?? ('latest' as Tag), copyOptions);
    if (result.present) {
      reporter.report({ event: 'image-present', source: from, destination: to, imageId: result.imageId, tagged: result.tagged });
      return 'up-to-date';
    }
    const { digest, mediaType, copied, mounted, skipped, bytes, imageId } = result;
    reporter.report({ event: 'image-copied', source: from, destination: to, digest, mediaType, copied, mounted, skipped, bytes, imageId });
    return 'copied';
  }
  const result = await copyImage(sourceStore, source.reference, destinationStore, tag, {
    ...copyOptions,
    // Archives hold layers uncompressed; elsewhere they are stored compressed, as skopeo does.
    ...(source.transport === 'docker-archive' ? { compressUncompressed: 'gzip' as const } : {}),
  });
  reporter.report({ event: 'image-copied', source: from, destination: to, ...result });
  return 'copied';
}

/** The destination's digest when it already holds exactly what a copy would write. */
async function upToDate(sourceStore: ImageStore, destinationStore: ImageStore, tag: Tag, options: TransferOptions, source: Location): Promise<Digest | undefined> {
  if (options.compress !== undefined || source.transport === 'docker-archive' || destinationStore.storesUncompressedLayers === true) return undefined;
  const current = await destinationStore.getManifest({ kind: 'tag', tag }, options.signal).catch(() => undefined);
  if (current === undefined) return undefined;
  const top = await sourceStore.getManifest({ kind: 'tag', tag }, options.signal);
  let manifest = top;
  let expected = top.digest;
  if (options.platforms !== 'all' && isManifestMediaType(top.mediaType) && isIndexMediaType(top.mediaType)) {
    const index = JSON.parse(Buffer.from(top.bytes).toString('utf8')) as { manifests: { digest: Digest; platform?: { os?: string; architecture?: string } }[] };
    const entry = choosePlatform(index.manifests, options.platforms ?? hostPlatform());
    if (entry === undefined) return undefined;
    expected = entry.digest;
    if (destinationStore.requiresOci === true) manifest = await sourceStore.getManifest({ kind: 'digest', digest: entry.digest }, options.signal);
  }
  if (destinationStore.requiresOci === true) {
    // A converted list depends on its converted children: copy it again (its blobs are skipped).
    if (manifest.mediaType === mediaTypes.dockerManifestList) return undefined;
    if (manifest.mediaType === mediaTypes.dockerManifest) expected = dockerToOciManifest(manifest).digest;
  }
  return current.digest === expected ? current.digest : undefined;
}

function reportFailure(reporter: Reporter, source: Location | undefined, destination: Location | undefined, error: unknown, sourceText = '', destinationText = ''): number {
  const { exitCode, code } = classifyFailure(error);
  const message = error instanceof Error ? error.message : String(error);
  reporter.report({
    event: 'image-failed',
    source: source === undefined ? sourceText : label(source),
    destination: destination === undefined ? destinationText : label(destination),
    code,
    message,
    exitCode,
  });
  return exitCode;
}

function sourceTag(source: Location): Tag | undefined {
  if (source.reference?.kind === 'tag') return source.reference.tag;
  if (source.reference === undefined && (source.transport === 'docker' || source.transport === 'docker-daemon')) return 'latest' as Tag;
  return undefined;
}

/** How `docker images` would name the source: what a docker archive records. */
function familiarName(source: Location): string | undefined {
  if (source.transport !== 'docker') return undefined;
  if (source.registry === 'docker.io') return source.repository.replace(/^library\//, '');
  return `${source.registry}/${source.repository}`;
}

function label(location: Location): string {
  const base = describeLocation(location);
  // A docker archive picks its image by NAME:TAG or @INDEX, not by the tag alone.
  if (location.transport === 'docker-archive') {
    if (location.name !== undefined) return `${base}:${location.name}`;
    if (location.index !== undefined) return `${base}:@${location.index}`;
  }
  const reference = location.reference;
  if (reference === undefined) return base;
  return reference.kind === 'digest' ? `${base}@${reference.digest}` : `${base}:${reference.tag}`;
}
