import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gunzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** One file of an image's root file system, as its layers' tar headers give it. */
export interface RootfsEntry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string | undefined;
  size: number;
  bytes: Buffer | undefined;
}

export interface ImageInArchive {
  index: { manifests: { digest: string; mediaType: string; annotations?: Record<string, string> }[] };
  blobs: Map<string, Buffer>;
  json(digest: string): Record<string, unknown>;
}

/** Every file of an OCI archive, blobs by digest (the archives in these tests are a few hundred MB at most). */
export async function readArchive(file: string): Promise<ImageInArchive> {
  const files = new Map<string, Buffer>();
  const extract = tar.extract();
  const parsing = pipeline(createReadStream(file), extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    if (entry.header.type === 'file') files.set(entry.header.name, Buffer.concat(chunks));
  }
  await parsing;
  const blobs = new Map<string, Buffer>();
  for (const [name, bytes] of files) if (name.startsWith('blobs/sha256/')) blobs.set(`sha256:${name.slice('blobs/sha256/'.length)}`, bytes);
  const json = (digest: string) => {
    const bytes = blobs.get(digest);
    if (bytes === undefined) throw new Error(`the archive has no blob ${digest}`);
    return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  };
  return { index: JSON.parse((files.get('index.json') ?? Buffer.from('{}')).toString('utf8')) as ImageInArchive['index'], blobs, json };
}

/** The root file system of the image a manifest describes, later layers over earlier ones; bytes kept where `keep` says. */
export async function readRootfs(image: ImageInArchive, manifestDigest: string, keep: (path: string) => boolean): Promise<Map<string, RootfsEntry>> {
  const manifest = image.json(manifestDigest) as { layers: { digest: string }[] };
  const rootfs = new Map<string, RootfsEntry>();
  for (const layer of manifest.layers) {
    const gzip = image.blobs.get(layer.digest);
    if (gzip === undefined) throw new Error(`missing layer ${layer.digest}`);
    const extract = tar.extract();
    const parsing = pipeline(Readable.from([gunzipSync(gzip)]), extract);
    for await (const entry of extract) {
      const { header } = entry;
      const path = `/${header.name.replace(/\/$/, '')}`;
      const chunks: Buffer[] = [];
      for await (const chunk of entry) if (keep(path)) chunks.push(chunk as Buffer);
      rootfs.set(path, {
        type: header.type ?? 'file',
        mode: header.mode ?? 0,
        uid: header.uid ?? 0,
        gid: header.gid ?? 0,
        mtime: header.mtime?.getTime() ?? 0,
        linkname: header.linkname ?? undefined,
        size: header.size ?? 0,
        bytes: keep(path) ? Buffer.concat(chunks) : undefined,
      });
    }
    await parsing;
  }
  return rootfs;
}

/** Follows symbolic links inside the image (absolute or relative), as the dynamic loader would. */
export function resolveInRootfs(rootfs: Map<string, RootfsEntry>, path: string): { path: string; entry: RootfsEntry } | undefined {
  let current = path;
  for (let hops = 0; hops < 16; hops += 1) {
    // Parent directories may be links too (/lib64 → /lib/…): resolve the longest linked prefix first.
    const parts = current.split('/').filter(Boolean);
    let resolved = '';
    for (const [position, part] of parts.entries()) {
      resolved = `${resolved}/${part}`;
      const entry = rootfs.get(resolved);
      if (entry?.type === 'symlink' && position < parts.length - 1) {
        const target = entry.linkname ?? '';
        resolved = target.startsWith('/') ? target : posix.join(posix.dirname(resolved), target);
      }
    }
    const entry = rootfs.get(resolved);
    if (entry === undefined) return undefined;
    if (entry.type !== 'symlink') return { path: resolved, entry };
    const target = entry.linkname ?? '';
    current = target.startsWith('/') ? target : posix.join(posix.dirname(resolved), target);
  }
  return undefined;
}

/** What the dynamic loader needs of an ELF file: its machine, its interpreter and its NEEDED libraries. */
export function elfInfo(bytes: Buffer): { machine: number; interpreter: string | undefined; needed: string[] } {
  if (bytes.readUInt32BE(0) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) throw new Error('not a 64-bit little-endian ELF file');
  const machine = bytes.readUInt16LE(18);
  const phoff = Number(bytes.readBigUInt64LE(0x20));
  const phentsize = bytes.readUInt16LE(0x36);
  const phnum = bytes.readUInt16LE(0x38);
  const segments = Array.from({ length: phnum }, (_, index) => {
    const at = phoff + index * phentsize;
    return {
      type: bytes.readUInt32LE(at),
      offset: Number(bytes.readBigUInt64LE(at + 8)),
      vaddr: Number(bytes.readBigUInt64LE(at + 16)),
      filesz: Number(bytes.readBigUInt64LE(at + 32)),
    };
  });
  const cString = (at: number) => bytes.toString('latin1', at, bytes.indexOf(0, at));
  const interp = segments.find((segment) => segment.type === 3);
  const dynamic = segments.find((segment) => segment.type === 2);
  const needed: number[] = [];
  let strtab: number | undefined;
  if (dynamic !== undefined) {
    for (let at = dynamic.offset; at < dynamic.offset + dynamic.filesz; at += 16) {
      const tag = Number(bytes.readBigInt64LE(at));
      const value = Number(bytes.readBigUInt64LE(at + 8));
      if (tag === 0) break;
      if (tag === 1) needed.push(value);
      if (tag === 5) strtab = value;
    }
  }
  const load = segments.find((segment) => segment.type === 1 && strtab !== undefined && strtab >= segment.vaddr && strtab < segment.vaddr + segment.filesz);
  const strtabOffset = strtab === undefined || load === undefined ? undefined : strtab - load.vaddr + load.offset;
  return {
    machine,
    interpreter: interp === undefined ? undefined : cString(interp.offset),
    needed: strtabOffset === undefined ? [] : needed.map((offset) => cString(strtabOffset + offset)),
  };
}
