import type { ManifestRecord } from '../../meta/meta-store.ts';
import { algorithmOf, digestOf, type Digest } from '../../oci/digest.ts';
import { parseDescriptor, parseManifest, type Descriptor } from '../../oci/manifest.ts';
import { isManifestMediaType } from '../../oci/media-types.ts';
import type { Tag } from '../../oci/names.ts';
import { ArchiveFormatError, blobPath, parseJsonFile, type ArchiveContents, type BlobLocation } from '../../archives/archive-contents.ts';
import { tagOfImageName } from '../../archives/image-names.ts';

/** oci-layout is one small JSON object. */
const maxLayoutFileBytes = 64 * 1024;

/** Annotations that name a top-level image; the OCI one first, then what containerd (and `docker save` ≥ 25) writes. */
const nameAnnotations = ['org.opencontainers.image.ref.name', 'io.containerd.image.name'];

/**
 * Reads an OCI image layout: tags from index.json's annotations, every
 * manifest reachable from index.json (verified against its digest), and
 * every blob under blobs/. An image whose config or layers are missing
 * makes the archive unreadable; a missing child of an index does not (tools
 * write single-platform archives of multi-platform indexes).
 */
export async function readOciLayout(
  contents: ArchiveContents,
  maxManifestBytes: number,
): Promise<{ tags: Map<Tag, Digest>; manifests: Map<Digest, ManifestRecord>; blobs: Map<Digest, BlobLocation> }> {
  const layout = jsonObject(await contents.readFile('oci-layout', maxLayoutFileBytes), 'oci-layout');
  if (typeof layout['imageLayoutVersion'] !== 'string') throw new ArchiveFormatError('oci-layout has no imageLayoutVersion');
  const index = jsonObject(await contents.readFile('index.json', maxManifestBytes), 'index.json');
  const topLevel = descriptorsOf(index, 'index.json');
  const blobs = contents.blobs();
  const manifests = new Map<Digest, ManifestRecord>();
  const tags = new Map<Tag, Digest>();

  const pending: { descriptor: Descriptor; required: boolean }[] = topLevel.map((descriptor) => ({ descriptor, required: true }));
  for (let next = pending.shift(); next !== undefined; next = pending.shift()) {
    const { descriptor, required } = next;
    if (manifests.has(descriptor.digest) || !isManifestMediaType(descriptor.mediaType)) continue;
    if (!blobs.has(descriptor.digest)) {
      if (required) throw new ArchiveFormatError(`index.json names manifest ${descriptor.digest}, which is missing from blobs/`);
      continue;
    }
    const record = await readManifest(contents, descriptor, maxManifestBytes);
    for (const needed of record.blobs) {
      if (!blobs.has(needed)) throw new ArchiveFormatError(`manifest ${descriptor.digest} needs blob ${needed}, which is missing from blobs/`);
    }
    manifests.set(descriptor.digest, record.record);
    for (const child of record.children) pending.push({ descriptor: child, required: false });
  }
  for (const descriptor of topLevel) {
    if (!manifests.has(descriptor.digest)) continue;
    for (const key of nameAnnotations) {
      const tag = tagOfImageName(descriptor.annotations?.[key]);
      if (tag !== undefined && !tags.has(tag)) tags.set(tag, descriptor.digest);
      if (tag !== undefined) break;
    }
  }
  return { tags, manifests, blobs };
}

async function readManifest(
  contents: ArchiveContents,
  descriptor: Descriptor,
  maxManifestBytes: number,
): Promise<{ record: ManifestRecord; blobs: readonly Digest[]; children: Descriptor[] }> {
  const where = `manifest ${descriptor.digest}`;
  const bytes = await contents.readFile(blobPath(descriptor.digest), maxManifestBytes);
  if (digestOf(bytes, algorithmOf(descriptor.digest)) !== descriptor.digest) throw new ArchiveFormatError(`${where}: the bytes do not match the digest`);
  if (bytes.length !== descriptor.size) throw new ArchiveFormatError(`${where}: ${bytes.length} bytes, but its descriptor says ${descriptor.size}`);
  let parsed;
  try {
    parsed = parseManifest(bytes, descriptor.mediaType);
  } catch (cause) {
    throw new ArchiveFormatError(`${where} is not a valid manifest: ${(cause as Error).message}`, { cause });
  }
  const record: ManifestRecord = { digest: descriptor.digest, mediaType: parsed.mediaType, bytes };
  if (parsed.subject !== undefined) record.subject = parsed.subject;
  if (parsed.artifactType !== undefined) record.artifactType = parsed.artifactType;
  if (parsed.annotations !== undefined) record.annotations = parsed.annotations;
  const children = parsed.children.length === 0 ? [] : descriptorsOf(jsonObject(bytes, where), where);
  return { record, blobs: parsed.blobs, children };
}

function descriptorsOf(index: Record<string, unknown>, where: string): Descriptor[] {
  const entries = index['manifests'];
  if (!Array.isArray(entries)) throw new ArchiveFormatError(`${where} has no "manifests" array`);
  try {
    return entries.map((entry, position) => parseDescriptor(entry, `${where} manifests[${position}]`));
  } catch (cause) {
    throw new ArchiveFormatError((cause as Error).message, { cause });
  }
}

function jsonObject(bytes: Buffer, where: string): Record<string, unknown> {
  const value = parseJsonFile(bytes, where);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ArchiveFormatError(`${where} is not a JSON object`);
  return value as Record<string, unknown>;
}
