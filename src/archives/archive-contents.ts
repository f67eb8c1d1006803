import { tryParseDigest, type Digest } from '../oci/digest.ts';

/**
 * Where a blob's bytes are: a byte range of the archive file itself, or
 * the registry's BlobStore (blobs of gzip-compressed archives, extracted once).
 */
export type BlobLocation = { kind: 'range'; offset: number; size: number } | { kind: 'store'; size: number };

/** An archive that cannot be served: truncated, damaged, or of no known format. */
export class ArchiveFormatError extends Error {
  override name = 'ArchiveFormatError';
}

/** What the format readers need from an archive, whether read in place or extracted. */
export interface ArchiveContents {
  has(path: string): boolean;
  /** An entry's bytes; ArchiveFormatError when missing or larger than `limit`. */
  readFile(path: string, limit: number): Promise<Buffer>;
  /** Digest, size, location and compression of a file entry that is served as a blob. */
  describeFile(path: string): Promise<DescribedFile>;
  /** Entries stored under `blobs/<algorithm>/<hex>`, by digest. */
  blobs(): Map<Digest, BlobLocation>;
}

export interface DescribedFile {
  digest: Digest;
  size: number;
  location: BlobLocation;
  compression: 'gzip' | 'zstd' | 'none';
}

/** The compression a layer's first bytes show. */
export function compressionOf(magic: Buffer): DescribedFile['compression'] {
  if (magic[0] === 0x1f && magic[1] === 0x8b) return 'gzip';
  if (magic[0] === 0x28 && magic[1] === 0xb5 && magic[2] === 0x2f && magic[3] === 0xfd) return 'zstd';
  return 'none';
}

/** `blobs/sha256/<hex>` for a digest, as image layouts store it. */
export function blobPath(digest: Digest): string {
  return `blobs/${digest.replace(':', '/')}`;
}

/** The digest an image layout's `blobs/<algorithm>/<hex>` path names, if it names one. */
export function digestOfBlobPath(path: string): Digest | undefined {
  const match = /^blobs\/([a-z0-9]+)\/([a-f0-9]+)$/.exec(path);
  return match === null ? undefined : tryParseDigest(`${match[1]}:${match[2]}`);
}

/** A metadata file's JSON; ArchiveFormatError naming the file when it is not JSON. */
export function parseJsonFile(bytes: Buffer, where: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new ArchiveFormatError(`${where} is not valid JSON`, { cause });
  }
}
