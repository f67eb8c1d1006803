import { createHash, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { RegistryError } from '../errors/registry-error.ts';
import { MeteredStream } from '../io/metered-stream.ts';
import { algorithmOf, finishDigest, type Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import { writeDurably } from '../io/durable-file.ts';
import { compressor, decompressor, type Compression } from './compression.ts';
import { checkDigest } from '../io/digest-check.ts';

/** A recompressed layer waiting in a local file to be uploaded. */
export interface SpooledLayer {
  digest: Digest;
  size: number;
  path: string;
  remove(): Promise<void>;
}

/**
 * Decompresses a layer and compresses it again into a spool file, checking
 * on the way that the source bytes match the layer's digest and that the
 * uncompressed tar is the one the image config names (its diff_id), so the
 * config stays valid as it is.
 */
export async function recompressLayer(
  source: Readable,
  layer: Descriptor,
  from: Compression,
  to: Exclude<Compression, 'none'>,
  diffId: Digest | undefined,
  spoolDir: string,
  signal?: AbortSignal,
): Promise<SpooledLayer> {
  const sourceHash = createHash(algorithmOf(layer.digest));
  const diffHash = createHash('sha256');
  const outputHash = createHash('sha256');
  const output = new MeteredStream(outputHash);
  const path = join(spoolDir, `berth-layer-${randomUUID()}`);
  const remove = () => rm(path, { force: true });
  try {
    const stages = [new MeteredStream(sourceHash, layer.size), ...(from === 'none' ? [] : [decompressor(from)]), new MeteredStream(diffHash), compressor(to), output];
    // A spool for this run only: no fsync needed.
    await writeDurably(path, source, stages, signal, false);
    checkDigest(layer.digest, finishDigest(sourceHash, algorithmOf(layer.digest)), (actual) => `layer ${layer.digest}: the source sent content with digest ${actual}`);
    const uncompressed = finishDigest(diffHash, 'sha256');
    if (diffId !== undefined && uncompressed !== diffId) {
      throw new RegistryError('DIGEST_INVALID', `layer ${layer.digest} unpacks to ${uncompressed}, but the image config's diff_id is ${diffId}`);
    }
    return { digest: finishDigest(outputHash, 'sha256'), size: output.bytes, path, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
