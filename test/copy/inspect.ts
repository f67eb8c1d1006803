import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { gunzipSync, zstdDecompressSync } from 'node:zlib';
import { compressionOf } from '../../src/archives/archive-contents.ts';
import type { ImageStore } from '../../src/copy/image-store.ts';
import { parseLocation } from '../../src/copy/location.ts';
import { openStore, type StoreOptions } from '../../src/copy/open-store.ts';
import type { Descriptor } from '../../src/oci/manifest.ts';

/** What identifies an image whatever the transport did to its layers' compression. */
export interface ImageFacts {
  manifestDigest: string;
  mediaType: string;
  configDigest: string;
  /** sha256 of each layer uncompressed: the config's diff_ids when all is well. */
  diffIds: string[];
  layerMediaTypes: string[];
  layerDigests: string[];
}

/** Reads an image back through Berth's own transports, checking every blob on the way. */
export async function imageFacts(location: string, options: StoreOptions): Promise<ImageFacts> {
  const parsed = parseLocation(location);
  const store = await openStore(parsed, options);
  try {
    return await factsOf(store, parsed.reference);
  } finally {
    await store.close();
  }
}

async function factsOf(store: ImageStore, reference: Parameters<ImageStore['getManifest']>[0]): Promise<ImageFacts> {
  const manifest = await store.getManifest(reference);
  const parsed = JSON.parse(Buffer.from(manifest.bytes).toString()) as { config: Descriptor; layers: Descriptor[] };
  const diffIds: string[] = [];
  for (const layer of parsed.layers) diffIds.push(await uncompressedDigest(await store.openBlob(layer)));
  return {
    manifestDigest: manifest.digest,
    mediaType: manifest.mediaType,
    configDigest: parsed.config.digest,
    diffIds,
    layerMediaTypes: parsed.layers.map((layer) => layer.mediaType),
    layerDigests: parsed.layers.map((layer) => layer.digest),
  };
}

/** sha256 of a (test-sized) layer after undoing whatever compression its first bytes show. */
export async function uncompressedDigest(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  const compression = compressionOf(bytes);
  const plain = compression === 'gzip' ? gunzipSync(bytes) : compression === 'zstd' ? zstdDecompressSync(bytes) : bytes;
  return `sha256:${createHash('sha256').update(plain).digest('hex')}`;
}
