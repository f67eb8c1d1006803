import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar, { type Header, type Pack } from 'tar-stream';
import { parse as parseYaml } from 'yaml';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import { finishDigest } from '../../oci/digest.ts';
import { MeteredStream, through } from '../../io/metered-stream.ts';
import type { Conversion } from '../../meta/droplet-store.ts';
import { archiveError, storeTarAsLayer } from './layer-writer.ts';

/** Where Cloud Foundry unpacks a droplet, and so where its entries go in the layer. */
export const dropletRoot = 'home/vcap';

export interface DropletOwner {
  uid: number;
  gid: number;
}

/** A tar header as tar-stream packs it: everything but the name may be left to defaults. */
type LayerHeader = Partial<Header> & Pick<Header, 'name'>;

/** A conversion, with the size of the droplet it came from. */
export interface ConvertedDroplet extends Conversion {
  dropletSize: number;
}

/** staging_info.yml is a few hundred bytes; anything larger is not read for the start command. */
const maxStagingInfoBytes = 64 * 1024;

/**
 * Pax records describing what this conversion rewrites (name, link target,
 * owner) or what tar-stream recomputes (size); the rest (xattrs, times) is kept.
 */
const rewrittenPaxKeys = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname']);

/**
 * tar-stream replaces a zero mode with its default (0644/0755); a bit above
 * the permission bits keeps the zero, and the encoder masks it away.
 */
const keepZeroMode = 0o100000;

/**
 * Turns a droplet (.tgz of an app as staged) into a gzip layer, in one
 * streaming pass: every entry moved under home/vcap/, owned by `owner`,
 * modes kept, hard-link targets rewritten, symlink targets untouched.
 * Hashes the droplet, the layer's tar (diff_id) and its gzip (digest) on
 * the way. Entries with absolute or `..` paths, and device nodes, are
 * refused with BLOB_UPLOAD_INVALID; nothing is kept then.
 */
export async function convertDroplet(blobs: BlobStore, droplet: Readable, owner: DropletOwner, signal?: AbortSignal): Promise<ConvertedDroplet> {
  const dropletHash = createHash('sha256');
  const metered = new MeteredStream(dropletHash);
  const tarStream = through(through(droplet, metered), createGunzip());
  const pack = tar.pack();
  const extract = tar.extract();
  const stored = storeTarAsLayer(blobs, Readable.from(pack), signal);
  const rewritten = rewriteEntries(tarStream, extract, pack, owner);
  const [layer, processTypes] = await Promise.allSettled([stored, rewritten]);
  if (processTypes.status === 'rejected') throw archiveError(processTypes.reason, 'the droplet');
  if (layer.status === 'rejected') throw archiveError(layer.reason, 'the droplet');
  return { dropletDigest: finishDigest(dropletHash, 'sha256'), dropletSize: metered.bytes, layer: layer.value, processTypes: processTypes.value };
}

/** Rewrites every entry into `pack`; resolves to the droplet's process types (Procfile, then staging_info.yml's start_command as web). */
async function rewriteEntries(source: Readable, extract: tar.Extract, pack: Pack, owner: DropletOwner): Promise<Record<string, string>> {
  const parsing = pipeline(source, extract);
  // Awaited after the entries; until then its failure surfaces through the entry loop.
  parsing.catch(() => undefined);
  const directories = new Set<string>();
  const addDirectory = async (path: string, mode: number, ids: DropletOwner, mtime: Date): Promise<void> => {
    directories.add(path);
    await writeEntry(pack, { name: `${path}/`, type: 'directory', mode, uid: ids.uid, gid: ids.gid, mtime });
  };
  let startCommand: string | undefined;
  let procfile: Record<string, string> = {};
  try {
    // Parents first: home/ belongs to root as in any rootfs, home/vcap/ to the app's user.
    await addDirectory('home', 0o755, { uid: 0, gid: 0 }, new Date(0));
    await addDirectory(dropletRoot, 0o755, owner, new Date(0));
    for await (const entry of extract) {
      const path = entryPath(entry.header.name, 'path');
      if (path === '') {
        entry.resume();
        continue;
      }
      const target = `${dropletRoot}/${path}`;
      for (const parent of parentsOf(target)) {
        if (!directories.has(parent)) await addDirectory(parent, 0o755, owner, new Date(0));
      }
      const header = layerHeader(entry.header, target, owner);
      if (header.type === 'directory') directories.add(target);
      if (path === 'staging_info.yml' && header.type === 'file' && (header.size ?? 0) <= maxStagingInfoBytes) {
        const bytes = await readAll(entry);
        startCommand = startCommandOf(bytes);
        await writeEntry(pack, header, bytes);
      } else if (path === 'app/Procfile' && header.type === 'file' && (header.size ?? 0) <= maxStagingInfoBytes) {
        const bytes = await readAll(entry);
        procfile = processTypesOf(bytes);
        await writeEntry(pack, header, bytes);
      } else {
        await pipeline(entry, pack.entry(header));
      }
    }
    await parsing;
    // TMPDIR points here; staged droplets have it, hand-made ones may not.
    if (!directories.has(`${dropletRoot}/tmp`)) await addDirectory(`${dropletRoot}/tmp`, 0o755, owner, new Date(0));
    pack.finalize();
    return startCommand === undefined ? procfile : { ...procfile, web: startCommand };
  } catch (error) {
    extract.destroy();
    await parsing.catch(() => undefined);
    // The layer being written must fail too, so that its upload is removed.
    pack.destroy(error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}

/** The header an entry gets in the layer. */
export function layerHeader(header: Header, target: string, owner: DropletOwner): LayerHeader {
  const type = header.type === 'contiguous-file' ? 'file' : header.type;
  if (type !== 'file' && type !== 'directory' && type !== 'symlink' && type !== 'link' && type !== 'fifo') {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `droplet entry "${clip(header.name)}" is a ${type ?? 'unknown entry type'}; droplets hold files, directories and links only`, {
      detail: { entry: clip(header.name), type: type ?? null },
    });
  }
  const mode = header.mode ?? 0;
  const result: LayerHeader = {
    name: type === 'directory' ? `${target}/` : target,
    type,
    mode: mode === 0 ? keepZeroMode : mode,
    uid: owner.uid,
    gid: owner.gid,
    size: type === 'file' ? (header.size ?? 0) : 0,
    mtime: header.mtime ?? new Date(0),
  };
  if (type === 'link') {
    const linked = entryPath(header.linkname ?? '', 'hard-link target');
    if (linked === '') throw invalidEntry(header.name, 'is a hard link to the droplet root');
    result.linkname = `${dropletRoot}/${linked}`;
  } else if (type === 'symlink') {
    // Resolved inside the container: relative targets stay relative to the link, absolute ones to its root.
    result.linkname = header.linkname ?? '';
  }
  const pax = keptPax(header);
  if (pax !== undefined) result.pax = pax;
  return result;
}

/**
 * A droplet entry's path relative to the droplet root ('' for the root
 * itself); absolute paths and `..` components are refused, because they
 * would land outside /home/vcap.
 */
export function entryPath(name: string, what: string): string {
  if (name.startsWith('/')) throw invalidEntry(name, `has an absolute ${what}`);
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw invalidEntry(name, `has a ${what} with ".."`);
  return parts.join('/');
}

/** The start command from staging_info.yml (YAML, in practice a JSON object). */
export function startCommandOf(bytes: Buffer): string | undefined {
  try {
    const info = parseYaml(bytes.toString('utf8')) as unknown;
    if (typeof info !== 'object' || info === null) return undefined;
    const command = (info as Record<string, unknown>)['start_command'];
    return typeof command === 'string' && command.trim() !== '' ? command : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Process types of a Procfile (`<type>: <command>` per line), as the
 * buildpack lifecycle reads it; staging_info.yml's start_command, which
 * already accounts for the Procfile's web entry, takes precedence for web.
 */
export function processTypesOf(bytes: Buffer): Record<string, string> {
  const types: Record<string, string> = {};
  for (const line of bytes.toString('utf8').split(/\r?\n/)) {
    const match = /^([A-Za-z0-9_-]+):\s*(.+?)\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) types[match[1]] = match[2];
  }
  return types;
}

function parentsOf(path: string): string[] {
  const parts = path.split('/');
  return parts.slice(1, -1).map((_, index) => parts.slice(0, index + 2).join('/'));
}

function keptPax(header: Header): Record<string, unknown> | undefined {
  const pax = header.pax;
  if (typeof pax !== 'object' || pax === null) return undefined;
  const kept = Object.entries(pax).filter(([key]) => !rewrittenPaxKeys.has(key));
  return kept.length === 0 ? undefined : Object.fromEntries(kept);
}

/** Packs an entry whose body is in hand (empty for directories). */
function writeEntry(pack: Pack, header: LayerHeader, body: Buffer = Buffer.alloc(0)): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, body, (error) => (error ? reject(error) : resolve()));
  });
}

async function readAll(entry: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of entry) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function invalidEntry(name: string, problem: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', `droplet entry "${clip(name)}" ${problem}; entries must be relative to the droplet root`, {
    detail: { entry: clip(name) },
  });
}

function clip(value: string): string {
  return value.length > 200 ? `${value.slice(0, 200)}…` : value;
}
