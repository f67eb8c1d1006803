import type { Readable } from 'node:stream';
import type { ByteRange, FileRegion } from '../blobs/blob-store.ts';
import type { Page } from '../meta/meta-store.ts';
import type { MediaTypeAcceptance } from '../oci/accept.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';

/** A manifest as served: exact bytes, with what the response headers need. */
export interface ManifestContent {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
  subject?: Digest;
}

/** Why a manifest is read: served to the client ('pull'), or only described (a HEAD request, a page of the web UI). */
export type ManifestRead = 'pull' | 'head';

/**
 * A blob's bytes: streamed by Berth, sent from a region of a local file
 * (the receiver closes it), or fetched by the client from elsewhere (HTTP 307).
 */
export type BlobBody = { kind: 'stream'; stream: Readable } | { kind: 'file'; region: FileRegion } | { kind: 'redirect'; url: string };

/**
 * One repository, whatever its kind (hosted, proxy, archive, droplet). The
 * HTTP layer speaks the Distribution protocol to this and nothing else.
 * Reads throw RegistryError: NAME_UNKNOWN, MANIFEST_UNKNOWN, BLOB_UNKNOWN.
 */
export interface Repository {
  readonly name: RepositoryName;
  /**
   * The manifest a reference names, in a media type the client accepts.
   * `read` says what it is for: 'pull' (the default) serves the bytes, 'head'
   * only what describes them, which is no pull (wrappers that record pulls
   * tell them apart; kinds may ignore it).
   */
  manifest(reference: Reference, accept: MediaTypeAcceptance, signal?: AbortSignal, read?: ManifestRead): Promise<ManifestContent>;
  /** Size of a blob readable in this repository. */
  blobSize(digest: Digest, signal?: AbortSignal): Promise<number>;
  /** The blob's bytes, or the inclusive range of them (already checked against the size). */
  openBlob(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<BlobBody>;
  /** Tags, sorted; NAME_UNKNOWN when the repository does not exist. */
  tags(page: Page, signal?: AbortSignal): Promise<Tag[]>;
  /** Manifests whose subject is `subject`, optionally filtered by artifact type. */
  /**
   * Manifests whose subject is `subject`. A kind that stores many reads at
   * most `page.limit` of them after `page.last` in digest order; a kind with
   * few may answer all of them (the HTTP layer orders and cuts).
   */
  referrers(subject: Digest, artifactType: string | undefined, signal?: AbortSignal, page?: Page): Promise<Descriptor[]>;
  /** Present only on kinds that accept writes; the others answer writes with UNSUPPORTED. */
  readonly writer?: RepositoryWriter;
}

/** Where an upload stands: its id and how many bytes it holds. */
export interface UploadState {
  id: string;
  size: number;
  /** Who started the upload, when it was started by a signed-in user. */
  owner?: string;
}

/** A chunk's declared position, from Content-Range (inclusive), and its declared length. */
export interface ChunkBounds {
  start?: number;
  end?: number;
  length?: number;
}

export interface PutManifestResult {
  digest: Digest;
  subject?: Digest;
}

/** The write side of a repository (hosted, and caches configured to accept pushes). */
export interface RepositoryWriter {
  /** Starts an upload session, bound to `owner` when given. */
  startUpload(owner?: string): Promise<UploadState>;
  uploadStatus(id: string): Promise<UploadState>;
  /** Appends a chunk; 416 (BLOB_UPLOAD_INVALID) when it does not start where the upload ends. */
  appendUpload(id: string, body: Readable, bounds: ChunkBounds, signal?: AbortSignal): Promise<UploadState>;
  /** Appends an optional last chunk, verifies the digest and makes the blob readable here. */
  finishUpload(id: string, digest: Digest, body: Readable | undefined, bounds: ChunkBounds, signal?: AbortSignal): Promise<number>;
  cancelUpload(id: string): Promise<void>;
  /**
   * Links a blob readable in `from` into this repository; false when `from`
   * does not hold it. Given a predicate instead, from any repository linking
   * the blob that the predicate accepts.
   */
  mountBlob(digest: Digest, from: RepositoryName | ((name: RepositoryName) => boolean)): Promise<boolean>;
  putManifest(reference: Reference, bytes: Uint8Array, contentType: string | undefined, extraTags: readonly Tag[]): Promise<PutManifestResult>;
  deleteManifest(reference: Reference): Promise<void>;
  deleteBlob(digest: Digest): Promise<void>;
}

/**
 * A kind of repository serving the names under one prefix. The router
 * picks a source by the longest matching prefix.
 */
export interface RepositorySource {
  /** The repository `name` (full name, prefix included); NAME_UNKNOWN when it cannot exist. */
  open(name: RepositoryName, signal?: AbortSignal): Promise<Repository>;
  /** Full names this source can list, sorted; used to build the catalog. */
  catalog(page: Page, signal?: AbortSignal): Promise<RepositoryName[]>;
  /**
   * Blobs this source keeps in the registry's BlobStore without MetaStore
   * links (layers it converted, configs it generated): a collector must not
   * delete them. Absent on sources whose blobs are all linked.
   */
  retainedBlobs?(): AsyncIterable<Digest>;
  close?(): Promise<void>;
}
