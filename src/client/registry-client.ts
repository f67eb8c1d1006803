import { Readable } from 'node:stream';
import type { ByteRange } from '../blobs/blob-store.ts';
import { algorithmOf, digestOf, tryParseDigest, type Digest } from '../oci/digest.ts';
import { parseDescriptor, type Descriptor } from '../oci/manifest.ts';
import { mediaTypes } from '../oci/media-types.ts';
import { isTag, referenceToString, type Reference, type RepositoryName, type Tag } from '../oci/names.ts';
import { readLimited, readLimitedBytes } from './response-body.ts';
import { noCredentials, type CredentialSource } from './credentials.ts';
import { UpstreamError } from './errors.ts';
import { discard, RegistryHttp, type RequestSpec } from './http.ts';
import { defaultRetryPolicy, type RetryPolicy } from './retry.ts';
import { uploadBlob, type BlobOpener, type UploadOptions, type UploadOutcome } from './uploads.ts';

export type { BlobOpener, UploadOutcome } from './uploads.ts';

export interface RegistryClientOptions {
  /** The registry as image names spell it (`ghcr.io`, `127.0.0.1:5000`, `docker.io`): used to find credentials. */
  host: string;
  /** Where its API lives: `https://registry-1.docker.io`, `http://127.0.0.1:5000`. */
  baseUrl: string;
  credentials?: CredentialSource;
  retry?: RetryPolicy;
  /** How long to wait for response headers (default 60 s). */
  timeoutMs?: number;
  userAgent?: string;
  /** Manifests larger than this are refused (default 4 MiB, the spec's recommendation). */
  maxManifestBytes?: number;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Sees every response (rate-limit headers, say) and when its request was sent (ms since the epoch, sub-millisecond). */
  onResponse?: (response: Response, sentAt: number) => void;
}

/** A manifest as a registry served it: exact bytes, their digest and media type. */
export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
}

/** What we accept for manifests, most preferred first; schema 1 is not among them. */
export const manifestAccept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

/**
 * A client for one OCI registry: manifests, blobs (ranged, streamed),
 * uploads (monolithic, chunked, mounted), tag and catalog listings and
 * referrers. Authentication and retries are handled below it.
 */
export class RegistryClient {
  readonly host: string;
  readonly baseUrl: string;
  readonly #http: RegistryHttp;
  readonly #maxManifestBytes: number;

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#maxManifestBytes = options.maxManifestBytes ?? 4 * 1024 * 1024;
    this.#http = new RegistryHttp({
      host: options.host,
      credentials: options.credentials ?? noCredentials,
      retry: options.retry ?? defaultRetryPolicy,
      userAgent: options.userAgent ?? 'berth',
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.onRetry === undefined ? {} : { onRetry: options.onRetry }),
      ...(options.onResponse === undefined ? {} : { onResponse: options.onResponse }),
    });
  }

  /** Checks that the registry answers the API at all (and learns how it authenticates). */
  async ping(signal?: AbortSignal): Promise<void> {
    await discard(await this.#http.send({ method: 'GET', url: `${this.baseUrl}/v2/`, scopes: [], signal }));
  }

  async getManifest(repository: RepositoryName, reference: Reference, signal?: AbortSignal): Promise<FetchedManifest> {
    const response = await this.#http.send({
      method: 'GET',
      url: this.#url(repository, 'manifests', referenceToString(reference)),
      headers: { accept: manifestAccept },
      ...pull(repository),
      signal,
    });
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > this.#maxManifestBytes) {
      await discard(response);
      throw new UpstreamError(`manifest ${repository}:${referenceToString(reference)} is larger than ${this.#maxManifestBytes} bytes`, { temporary: false });
    }
    const bytes = await readLimitedBytes(response, this.#maxManifestBytes);
    return { bytes, mediaType: manifestMediaType(response.headers.get('content-type'), bytes), digest: checkManifestDigest(bytes, reference, response) };
  }

  /** The digest and type of a manifest without its body; undefined when the registry does not have it. */
  async headManifest(repository: RepositoryName, reference: Reference, signal?: AbortSignal): Promise<{ digest: Digest | undefined; mediaType: string; size: number } | undefined> {
    const response = await this.#http.send({
      method: 'HEAD',
      url: this.#url(repository, 'manifests', referenceToString(reference)),
      headers: { accept: manifestAccept },
      ...pull(repository),
      accept: [404],
      signal,
    });
    await discard(response);
    if (response.status === 404) return undefined;
    const header = response.headers.get('docker-content-digest');
    const digest = reference.kind === 'digest' ? reference.digest : header === null ? undefined : tryParseDigest(header);
    return { digest, mediaType: mediaTypeOnly(response.headers.get('content-type')) ?? '', size: Number(response.headers.get('content-length') ?? 0) };
  }

  async putManifest(repository: RepositoryName, reference: Reference, manifest: { bytes: Uint8Array; mediaType: string }, signal?: AbortSignal): Promise<Digest> {
    const response = await this.#http.send({
      method: 'PUT',
      url: this.#url(repository, 'manifests', referenceToString(reference)),
      headers: { 'content-type': manifest.mediaType },
      body: async () => ({ bytes: manifest.bytes }),
      ...push(repository),
      signal,
    });
    await discard(response);
    if (reference.kind === 'digest') return reference.digest;
    const expected = digestOf(manifest.bytes);
    const answered = tryParseDigest(response.headers.get('docker-content-digest') ?? '');
    if (answered !== undefined && algorithmOf(answered) === 'sha256' && answered !== expected) {
      throw new UpstreamError(`registry stored the manifest as ${answered}, not ${expected}`, { temporary: false, code: 'DIGEST_INVALID' });
    }
    return expected;
  }

  /** A blob's size, or undefined when the repository does not hold it. */
  async statBlob(repository: RepositoryName, digest: Digest, signal?: AbortSignal): Promise<number | undefined> {
    const response = await this.#http.send({
      method: 'HEAD',
      url: this.#url(repository, 'blobs', digest),
      ...pull(repository),
      accept: [404],
      followRedirects: true,
      signal,
    });
    await discard(response);
    if (response.status === 404) return undefined;
    const length = response.headers.get('content-length');
    return length === null ? undefined : Number(length);
  }

  /**
   * Streams a blob, or the inclusive `range` of it. `size` is the length
   * of this body; `total` the blob's whole size when the registry said.
   */
  async openBlob(
    repository: RepositoryName,
    digest: Digest,
    range?: ByteRange,
    options: { signal?: AbortSignal | undefined; retry?: boolean } = {},
  ): Promise<{ stream: Readable; size: number | undefined; total: number | undefined }> {
    const headers: Record<string, string> = { 'accept-encoding': 'identity' };
    if (range !== undefined) headers['range'] = `bytes=${range.start}-${range.end}`;
    const response = await this.#http.send({
      method: 'GET',
      url: this.#url(repository, 'blobs', digest),
      headers,
      ...pull(repository),
      followRedirects: true,
      signal: options.signal,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
    });
    if (range !== undefined && response.status !== 206) {
      await discard(response);
      throw new UpstreamError(`${this.host} ignored a range request for blob ${digest}`, { status: response.status, temporary: false });
    }
    const length = response.headers.get('content-length');
    const size = length === null ? undefined : Number(length);
    const contentRange = /\/(\d+)$/.exec(response.headers.get('content-range') ?? '');
    const total = contentRange?.[1] !== undefined ? Number(contentRange[1]) : range === undefined ? size : undefined;
    if (response.body === null) throw new UpstreamError(`${this.host} answered blob ${digest} without a body`, { temporary: true });
    return { stream: Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>), size, total };
  }

  /** Links a blob from another repository of this registry; false when the registry would not. */
  async mountBlob(repository: RepositoryName, digest: Digest, from: RepositoryName, signal?: AbortSignal): Promise<boolean> {
    const url = new URL(`${this.baseUrl}/v2/${repository}/blobs/uploads/`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', from);
    const response = await this.#http.send({
      method: 'POST',
      url: url.toString(),
      headers: { 'content-length': '0' },
      scopes: [`repository:${repository}:pull,push`, `repository:${from}:pull`],
      repository,
      signal,
    });
    await discard(response);
    if (response.status === 201) return true;
    // 202: the registry opened an upload instead; leave it to expire rather than guess its protocol.
    const location = response.headers.get('location');
    if (location !== null) {
      await this.#http.send({ method: 'DELETE', url: new URL(location, this.baseUrl).toString(), ...push(repository), accept: [404, 405], signal }).then(discard, () => undefined);
    }
    return false;
  }

  /** Uploads a blob: monolithic when it is small or chunking is off, in resumable chunks otherwise. */
  uploadBlob(repository: RepositoryName, blob: { digest: Digest; size: number }, open: BlobOpener, options: UploadOptions = {}): Promise<UploadOutcome> {
    return uploadBlob(this.#http, { baseUrl: this.baseUrl, repository, scopes: push(repository) }, blob, open, options);
  }

  /** One page of tags (those that are valid tags), and where the next page starts. */
  async tags(repository: RepositoryName, page: { last?: string; limit?: number } = {}, signal?: AbortSignal): Promise<{ tags: Tag[]; next?: string }> {
    const url = new URL(`${this.baseUrl}/v2/${repository}/tags/list`);
    if (page.limit !== undefined) url.searchParams.set('n', String(page.limit));
    if (page.last !== undefined) url.searchParams.set('last', page.last);
    const body = await this.#json<{ tags?: unknown }>({ method: 'GET', url: url.toString(), ...pull(repository), signal });
    const tags = Array.isArray(body.value.tags) ? body.value.tags.filter((tag): tag is Tag => typeof tag === 'string' && isTag(tag)) : [];
    return body.next === undefined ? { tags } : { tags, next: body.next };
  }

  /** Every tag, following the registry's pagination. */
  async allTags(repository: RepositoryName, signal?: AbortSignal): Promise<Tag[]> {
    const all: Tag[] = [];
    let url: string | undefined = `${this.baseUrl}/v2/${repository}/tags/list`;
    while (url !== undefined) {
      const body: { value: { tags?: unknown }; next?: string } = await this.#json({ method: 'GET', url, ...pull(repository), signal });
      if (Array.isArray(body.value.tags)) all.push(...body.value.tags.filter((tag): tag is Tag => typeof tag === 'string' && isTag(tag)));
      url = body.next;
    }
    return all;
  }

  /** Every repository the catalog lists (registries may refuse: Docker Hub does). */
  async catalog(signal?: AbortSignal): Promise<string[]> {
    const all: string[] = [];
    let url: string | undefined = `${this.baseUrl}/v2/_catalog`;
    while (url !== undefined) {
      const body: { value: { repositories?: unknown }; next?: string } = await this.#json({ method: 'GET', url, scopes: ['registry:catalog:*'], signal });
      if (Array.isArray(body.value.repositories)) all.push(...body.value.repositories.filter((name): name is string => typeof name === 'string'));
      url = body.next;
    }
    return all;
  }

  /** Manifests referring to `digest`, or undefined when the registry has no referrers API. */
  async referrers(repository: RepositoryName, digest: Digest, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    const url = new URL(`${this.baseUrl}/v2/${repository}/referrers/${digest}`);
    if (artifactType !== undefined) url.searchParams.set('artifactType', artifactType);
    const response = await this.#http.send({ method: 'GET', url: url.toString(), headers: { accept: mediaTypes.ociIndex }, ...pull(repository), accept: [404], signal });
    if (response.status === 404) {
      await discard(response);
      return undefined;
    }
    const index = JSON.parse(await readLimited(response, this.#maxManifestBytes)) as { manifests?: unknown[] };
    return (index.manifests ?? []).map((entry, position) => parseDescriptor(entry, `referrers.manifests[${position}]`));
  }

  async #json<T>(spec: RequestSpec): Promise<{ value: T; next?: string }> {
    const response = await this.#http.send({ ...spec, headers: { accept: 'application/json', ...spec.headers } });
    const text = await readLimited(response, 16 * 1024 * 1024);
    let value: T;
    try {
      value = JSON.parse(text) as T;
    } catch (cause) {
      throw new UpstreamError(`${spec.url}: answer is not JSON`, { temporary: false, cause });
    }
    const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(response.headers.get('link') ?? '')?.[1];
    return link === undefined ? { value } : { value, next: new URL(link, this.baseUrl).toString() };
  }

  #url(repository: RepositoryName, kind: 'manifests' | 'blobs', reference: string): string {
    return `${this.baseUrl}/v2/${repository}/${kind}/${reference}`;
  }
}

function pull(repository: RepositoryName): { scopes: string[]; repository: string } {
  return { scopes: [`repository:${repository}:pull`], repository };
}

function push(repository: RepositoryName): { scopes: string[]; repository: string } {
  return { scopes: [`repository:${repository}:pull,push`], repository };
}

function mediaTypeOnly(header: string | null): string | undefined {
  const type = header?.split(';')[0]?.trim().toLowerCase();
  return type === undefined || type === '' ? undefined : type;
}

/** The Content-Type, unless it is generic; then what the manifest says it is. */
function manifestMediaType(header: string | null, bytes: Uint8Array): string {
  const type = mediaTypeOnly(header);
  if (type !== undefined && type !== 'application/json' && type !== 'text/plain' && type !== 'application/octet-stream') return type;
  return sniffManifestType(bytes);
}

/** A manifest's media type from its own mediaType field, or its shape (a list of manifests is an index). */
export function sniffManifestType(bytes: Uint8Array): string {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
    if (typeof json.mediaType === 'string') return json.mediaType;
    return Array.isArray(json.manifests) ? mediaTypes.ociIndex : mediaTypes.ociManifest;
  } catch {
    return mediaTypes.ociManifest;
  }
}

/** The bytes' digest, checked against the reference (by digest) or the registry's header (by tag). */
function checkManifestDigest(bytes: Uint8Array, reference: Reference, response: Response): Digest {
  const header = response.headers.get('docker-content-digest');
  const claimed = reference.kind === 'digest' ? reference.digest : header === null ? undefined : tryParseDigest(header);
  const actual = digestOf(bytes, claimed === undefined ? 'sha256' : algorithmOf(claimed));
  if (claimed !== undefined && actual !== claimed) {
    throw new UpstreamError(`manifest served for ${referenceToString(reference)} has digest ${actual}, not ${claimed}`, { temporary: false, code: 'DIGEST_INVALID' });
  }
  return reference.kind === 'digest' ? actual : digestOf(bytes);
}
