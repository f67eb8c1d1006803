import { open } from 'node:fs/promises';
import type { Transform } from 'node:stream';
import { constants, createGunzip, createGzip, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { mediaTypes } from '../oci/media-types.ts';
import { compressionOf } from '../archives/archive-contents.ts';

export type Compression = 'gzip' | 'zstd' | 'none';

/** What a layer's media type says about its compression; undefined when it is not a tar layer. */
export function compressionOfMediaType(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case mediaTypes.ociLayerGzip:
    case mediaTypes.dockerLayerGzip:
    case mediaTypes.ociLayerNondistributableGzip:
    case mediaTypes.dockerForeignLayer:
      return 'gzip';
    case mediaTypes.ociLayerZstd:
    case mediaTypes.ociLayerNondistributableZstd:
    case mediaTypes.dockerLayerZstd:
      return 'zstd';
    case mediaTypes.ociLayerTar:
    case mediaTypes.ociLayerNondistributableTar:
    case mediaTypes.dockerLayerTar:
      return 'none';
    default:
      return undefined;
  }
}

/** Compression by magic number: what a file really is, whatever it is called. */
export async function sniffFileCompression(path: string): Promise<Compression> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(4);
    const { bytesRead } = await handle.read(head, 0, 4, 0);
    return compressionOf(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

export function decompressor(compression: Exclude<Compression, 'none'>): Transform {
  return compression === 'gzip' ? createGunzip() : createZstdDecompress();
}

/** Compressors at the level registries' clients use by default (gzip 6 in Docker; zstd 3). */
export function compressor(compression: Exclude<Compression, 'none'>): Transform {
  return compression === 'gzip' ? createGzip({ level: 6 }) : createZstdCompress({ params: { [constants.ZSTD_c_compressionLevel]: 3 } });
}

/** The media type of a tar layer with this compression, in the manifest's family (OCI or Docker). */
export function layerMediaType(compression: Compression, docker: boolean): string {
  if (docker && compression === 'gzip') return mediaTypes.dockerLayerGzip;
  if (docker && compression === 'none') return mediaTypes.dockerLayerTar;
  if (compression === 'gzip') return mediaTypes.ociLayerGzip;
  if (compression === 'zstd') return mediaTypes.ociLayerZstd;
  return mediaTypes.ociLayerTar;
}
