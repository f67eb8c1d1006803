import { createHash } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressor, sniffCompression } from '../../src/copy/compression.ts';
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
  };
}

/** sha256 of a stream after undoing whatever compression its first bytes show. */
export async function uncompressedDigest(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  const iterator = stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  const head = first.done === true ? Buffer.alloc(0) : (first.value as Buffer);
  const compression = sniffCompression(head);
  const rest = new PassThrough();
  rest.write(head);
  const feeding = (async () => {
    for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
      if (!rest.write(next.value as Buffer)) await new Promise((resolve) => rest.once('drain', resolve));
    }
    rest.end();
  })();
  const stages = compression === 'none' ? [] : [decompressor(compression)];
  await pipeline([rest, ...stages, async function* (source: AsyncIterable<Buffer>) {
    for await (const chunk of source) hash.update(chunk);
  }]);
  await feeding;
  return `sha256:${hash.digest('hex')}`;
}
