import type { Readable } from 'node:stream';
import type { ByteRange } from '../blobs/blob-store.ts';
import type { BlobOpener } from '../client/uploads.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';

export type { BlobOpener } from '../client/uploads.ts';

/** A manifest's exact bytes with its digest and media type. */
export interface ManifestData {
  digest: Digest;
  mediaType: string;
  bytes: Uint8Array;
}

export interface PutManifestOptions {
  child?: boolean;
  signal?: AbortSignal | undefined;
}

export interface PutBlobOptions {
  /** Bytes written so far, for progress displays. */
  onProgress?: (bytes: number) => void;
  /** A repository on the same registry that holds the blob: mount instead of copying. */
  mountFrom?: RepositoryName;
  signal?: AbortSignal | undefined;
}

/**
 * Where images are read and written: a registry repository, an OCI image
 * layout (directory or S3 bucket) or an archive. `berth copy` and `berth
 * sync` speak only this. Writers verify every blob against its digest
 * before it becomes visible; nothing is visible before `commit` where the
 * format has a single index (layouts, archives).
 */
export interface ImageStore {
  /** How messages name this store: `docker://host/repo`, `oci:/path`. */
  readonly description: string;
  /**
   * The manifest a tag or digest names; with no reference, the one the
   * location names (or its only image). Throws RegistryError MANIFEST_UNKNOWN.
   */
  getManifest(reference: Reference | undefined, signal?: AbortSignal): Promise<ManifestData>;
  openBlob(descriptor: Descriptor, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  listTags(signal?: AbortSignal): Promise<Tag[]>;
  hasBlob(descriptor: Descriptor, signal?: AbortSignal): Promise<boolean>;
  /** Stores a blob, reading it with `open` (again, from an offset, when a transfer resumes). */
  putBlob(descriptor: Descriptor, open: BlobOpener, options?: PutBlobOptions): Promise<'copied' | 'mounted'>;
  /**
   * Stores a manifest (after everything it references), tagged when `tag`
   * is given. A `child` is an index's entry: stored, but not an image of
   * its own in formats that list images (a layout's index.json).
   */
  putManifest(manifest: ManifestData, tag: Tag | undefined, options?: PutManifestOptions): Promise<void>;
  /** Makes what was written visible: index.json, the archive file. */
  commit(signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
  /** The repository to mount from, when `source` lives on the same registry as this store. */
  mountSource?(source: ImageStore): RepositoryName | undefined;
  /** Holds only OCI manifests, as the tools that read it expect (layouts): Docker schema 2 ones are converted. */
  readonly requiresOci?: boolean;
  /** Layers this store keeps uncompressed whatever it is given (docker-archive). */
  readonly storesUncompressedLayers?: boolean;
  /**
   * What refers to `subject` here (signatures, SBOMs, attestations): by
   * digest, or by cosign's `sha256-<hex>.sig` tags (then `tag` is set).
   * Absent where a format cannot hold referrers (docker archives).
   */
  referrers?(subject: Digest, signal?: AbortSignal): Promise<ReferrerRef[]>;
}

/** A manifest that refers to another: found by digest, or by a cosign tag it is stored under. */
export interface ReferrerRef {
  digest: Digest;
  tag?: Tag;
}

/** cosign's tags for what refers to a manifest: `sha256-<hex>.sig`, `.att`, `.sbom`. */
export function cosignTagsOf(subject: Digest): Tag[] {
  const [algorithm, hex] = subject.split(':');
  return ['sig', 'att', 'sbom'].map((suffix) => `${algorithm}-${hex}.${suffix}` as Tag);
}

export function manifestNotFound(where: string, reference: Reference | string | undefined): RegistryError {
  const name = reference === undefined ? 'no image' : typeof reference === 'string' ? reference : reference.kind === 'tag' ? reference.tag : reference.digest;
  return new RegistryError('MANIFEST_UNKNOWN', `${where}: ${reference === undefined ? 'names no single image; give a reference' : `has no manifest ${name}`}`, {
    detail: { reference: name },
  });
}

/** A source location whose file or directory is not there at all (exit 4, as any missing source). */
export function sourceMissing(where: string, what: 'file' | 'directory'): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `${where}: the ${what} does not exist`);
}

export function blobNotFound(where: string, digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', `${where}: has no blob ${digest}`, { detail: { digest } });
}
