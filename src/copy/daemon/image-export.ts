import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { RegistryError } from '../../errors/registry-error.ts';
import { readAtMost } from '../../io/bounded-read.ts';
import type { Digest } from '../../oci/digest.ts';
import type { BlobOpener } from '../image-store.ts';

/** What the export holds for one image: its config (by image ID) and layer tars (by diff_id). */
export interface ExportedImage {
  id: Digest;
  diffIds: readonly Digest[];
}

/** One file of the export that belongs to the image, as the reader meets it. */
export type ExportEntry =
  | { kind: 'config'; size: number; stream: Readable }
  | { kind: 'layer'; diffId: Digest; size: number; stream: Readable }
  /** A layer the export names in a way this reader could not tie to a diff_id before reading it. */
  | { kind: 'unnamed-layer'; path: string; size: number; stream: Readable };

const maxSmallFile = 16 * 1024 * 1024;

/**
 * Walks an image export (`GET /images/{name}/get`, the `docker save`
 * format) as it streams, telling each file's identity from its header,
 * before its content is read, so that a caller can skip what its
 * destination has. Formats met:
 * - podman and skopeo: `<diff_id hex>.tar`, `<image id hex>.json`;
 * - Docker 25 and later: an OCI layout, `blobs/sha256/<hex>`;
 * - Docker before 25: `<v1 id>/layer.tar` after `<v1 id>/json`, the v1 id
 *   being a hash that names the layer's position: matched against the
 *   image's chain IDs (see `v1Candidates`). A layer that matches nothing is
 *   handed over as `unnamed-layer` with its path; manifest.json, last in
 *   the stream, ties such paths to diff_ids (`layerPaths`).
 * Every entry's stream must be read or drained before the next is handed over.
 */
export async function* readImageExport(source: Readable, image: ExportedImage): AsyncGenerator<ExportEntry, { layerPaths: Map<string, Digest> }> {
  const extract = tar.extract();
  source.once('error', (error) => extract.destroy(error));
  source.pipe(extract);
  const chainIds = chainIdsOf(image.diffIds);
  const v1Json = new Map<string, string>();
  const layerPaths = new Map<string, Digest>();
  const idHex = image.id.slice('sha256:'.length);
  try {
    for await (const entry of extract) {
      const { name: rawName, size = 0, type } = entry.header;
      const name = rawName.replace(/^\.\//, '');
      if (type !== 'file') {
        entry.resume();
        continue;
      }
      // tar-stream's entries are streamx streams; the stores take Node's.
      const stream = Readable.from(entry);
      const plain = /^([0-9a-f]{64})\.(json|tar)$/.exec(name) ?? /^blobs\/sha256\/([0-9a-f]{64})()$/.exec(name);
      const v1 = /^([0-9a-f]{64})\/(json|layer\.tar)$/.exec(name);
      if (plain !== null && plain[1] === idHex && plain[2] !== 'tar') {
        yield { kind: 'config', size, stream };
      } else if (plain !== null && plain[2] !== 'json' && image.diffIds.includes(`sha256:${plain[1]}` as Digest)) {
        yield { kind: 'layer', diffId: `sha256:${plain[1]}` as Digest, size, stream };
      } else if (v1 !== null && v1[2] === 'json') {
        v1Json.set(v1[1] as string, await readSmall(stream, name));
      } else if (v1 !== null) {
        const position = v1Position(v1[1] as string, v1Json.get(v1[1] as string), chainIds);
        const diffId = position === undefined ? undefined : image.diffIds[position];
        if (diffId === undefined) yield { kind: 'unnamed-layer', path: name, size, stream };
        else yield { kind: 'layer', diffId, size, stream };
      } else if (name === 'manifest.json') {
        for (const [path, diffId] of layersOfManifest(await readSmall(stream, name), image)) layerPaths.set(path, diffId);
      } else {
        entry.resume();
      }
      // A consumer that stopped half-way leaves the rest to be skipped.
      entry.resume();
    }
  } finally {
    source.unpipe(extract);
    if (!source.readableEnded) source.destroy();
  }
  return { layerPaths };
}

/** Layer paths of manifest.json's entry for this image, with their diff_ids by position. */
function layersOfManifest(text: string, image: ExportedImage): [string, Digest][] {
  const entries = JSON.parse(text) as { Config?: string; Layers?: string[] }[];
  const idHex = image.id.slice('sha256:'.length);
  const entry = entries.find((candidate) => candidate.Config?.includes(idHex) === true) ?? (entries.length === 1 ? entries[0] : undefined);
  const layers = entry?.Layers ?? [];
  if (layers.length !== image.diffIds.length) {
    throw new RegistryError('MANIFEST_INVALID', `docker-daemon: the export lists ${layers.length} layers for an image of ${image.diffIds.length}`);
  }
  return layers.map((path, position) => [path, image.diffIds[position] as Digest]);
}

/** The chain IDs of an image's layers: each names a layer with everything beneath it. */
export function chainIdsOf(diffIds: readonly Digest[]): string[] {
  const chain: string[] = [];
  for (const diffId of diffIds) {
    const previous = chain.at(-1);
    chain.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return chain;
}

/**
 * Which layer a Docker v1 id names. Docker computes it as the SHA-256 of
 * the layer's v1 JSON (the `json` file without `id` and `parent`) with
 * `layer_id` (the chain ID) and `parent` (the parent's v1 id as a digest)
 * added, keys sorted, values as they were written. Below the top layer the
 * JSON is hashed before `os` is added to it, so both forms are tried. A
 * match is a hash match, so never a wrong guess; no match is undefined.
 */
function v1Position(v1Id: string, json: string | undefined, chainIds: readonly string[]): number | undefined {
  if (json === undefined) return undefined;
  let members: [string, string][];
  let parent: unknown;
  try {
    members = topLevelMembers(json);
    parent = (JSON.parse(json) as { parent?: unknown }).parent;
  } catch {
    return undefined;
  }
  const base = members.filter(([key]) => key !== 'id' && key !== 'parent');
  const variants = [base, base.filter(([key]) => key !== 'os')];
  for (const [position, chainId] of chainIds.entries()) {
    for (const variant of variants) {
      const added: [string, string][] = [
        ['layer_id', JSON.stringify(chainId)],
        ...(typeof parent === 'string' && parent !== '' ? [['parent', JSON.stringify(`sha256:${parent}`)] as [string, string]] : []),
      ];
      const sorted = [...variant, ...added].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const text = `{${sorted.map(([key, value]) => `${JSON.stringify(key)}:${value}`).join(',')}}`;
      if (createHash('sha256').update(text).digest('hex') === v1Id) return position;
    }
  }
  return undefined;
}

/** The members of a compact JSON object, each value as its exact text. */
function topLevelMembers(text: string): [string, string][] {
  const members: [string, string][] = [];
  if (text[0] !== '{') throw new Error('not an object');
  let at = 1;
  while (at < text.length && text[at] !== '}') {
    if (text[at] === ',') at += 1;
    let end = at + 1;
    while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
    const key = JSON.parse(text.slice(at, end + 1)) as string;
    at = end + 2;
    let depth = 0;
    let inString = false;
    let cursor = at;
    for (; cursor < text.length; cursor += 1) {
      const char = text[cursor];
      if (inString) {
        if (char === '\\') cursor += 1;
        else if (char === '"') inString = false;
      } else if (char === '"') inString = true;
      else if (char === '{' || char === '[') depth += 1;
      else if (char === '}' || char === ']') {
        if (depth === 0) break;
        depth -= 1;
      } else if (char === ',' && depth === 0) break;
    }
    members.push([key, text.slice(at, cursor)]);
    at = cursor;
  }
  return members;
}

export async function readSmall(stream: Readable, what: string): Promise<string> {
  return (await readSmallBytes(stream, what)).toString('utf8');
}

export async function readSmallBytes(stream: Readable, what: string): Promise<Buffer> {
  return readAtMost(stream, maxSmallFile, () => new RegistryError('SIZE_INVALID', `docker-daemon: ${what} in the export is larger than 16 MiB`));
}

/**
 * A BlobOpener over a stream that can be read once: consecutive ranges
 * (as chunked and multipart uploads ask) are served from it in order; a
 * request to go back (a retried upload) fails, since a daemon's export
 * cannot be rewound: the copy is run again instead.
 */
export function onceOpener(stream: Readable, size: number): BlobOpener {
  let iterator: AsyncIterator<unknown> | undefined;
  let position = 0;
  let leftover: Buffer | undefined;
  return async (range) => {
    const start = range?.start ?? 0;
    const end = range?.end ?? size - 1;
    if (start !== position) throw new RegistryError('UNKNOWN', 'docker-daemon: an export is read once and cannot be resent from an earlier offset; run the copy again');
    if (iterator === undefined && start === 0 && end >= size - 1) {
      // The whole blob at once (most stores ask so): the stream itself, with no extra step per chunk.
      position = size;
      return stream;
    }
    iterator ??= stream[Symbol.asyncIterator]();
    const chunks = iterator;
    return Readable.from(
      (async function* () {
        while (position <= end) {
          let chunk = leftover;
          leftover = undefined;
          if (chunk === undefined) {
            const next = await chunks.next();
            if (next.done === true) return;
            chunk = next.value as Buffer;
          }
          const room = end - position + 1;
          if (chunk.length > room) {
            leftover = chunk.subarray(room);
            chunk = chunk.subarray(0, room);
          }
          position += chunk.length;
          yield chunk;
        }
      })(),
    );
  };
}

/** Reads a stream to its end, discarding it. */
export async function drain(stream: Readable): Promise<void> {
  for await (const chunk of stream) void chunk;
}
