import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';

/** Where a file's bytes sit inside an uncompressed tar. */
export interface TarEntry {
  /** Byte offset of the first data byte. */
  offset: number;
  size: number;
}

/** A tar that cannot be read to its end: truncated, damaged or not a tar at all. */
export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

const blockSize = 512;
/** Pax records and GNU long names are metadata; anything larger is not a sane archive. */
const maxMetadataBytes = 1024 * 1024;
/** Chains of links longer than this are treated as a loop. */
const maxLinkDepth = 16;

interface Pending {
  pax: Map<string, string>;
  longName?: string;
  longLink?: string;
}

interface Link {
  target: string;
  /** Symlink targets are relative to the link's directory; hard links to the archive root. */
  symbolic: boolean;
}

/**
 * Reads the headers of an uncompressed tar (ustar, pax, GNU long names and
 * base-256 sizes) and returns every regular file with the offset of its
 * data, without reading the data. Links resolve to the entry they name; a
 * later entry of the same path replaces an earlier one, as tar extraction
 * does. Paths are normalized ("./a/b" → "a/b").
 *
 * tar-stream parses headers but never reveals offsets, hence this reader.
 */
export async function readTarEntries(handle: FileHandle, fileSize: number): Promise<Map<string, TarEntry>> {
  const files = new Map<string, TarEntry>();
  const links = new Map<string, Link>();
  const header = Buffer.alloc(blockSize);
  let pending: Pending = { pax: new Map() };
  let offset = 0;
  for (;;) {
    if (offset + blockSize > fileSize) throw new TarFormatError(`archive ends at byte ${fileSize} inside a header or before the end-of-archive marker`);
    await readFully(handle, header, offset);
    if (isZeroBlock(header)) return resolveLinks(files, links);
    verifyChecksum(header, offset);
    const type = String.fromCharCode(header[156] ?? 0);
    const paxSize = pending.pax.get('size');
    const size = paxSize !== undefined && isMember(type) ? parseDecimal(paxSize, offset) : parseNumeric(header, 124, 12, offset);
    const dataOffset = offset + blockSize;
    if (dataOffset + size > fileSize) {
      throw new TarFormatError(`entry at byte ${offset} claims ${size} bytes but the archive ends at byte ${fileSize}`);
    }
    offset = dataOffset + Math.ceil(size / blockSize) * blockSize;
    switch (type) {
      case 'x':
        for (const [key, value] of parsePax(await readMetadata(handle, dataOffset, size))) pending.pax.set(key, value);
        continue;
      case 'L':
        pending.longName = cString(await readMetadata(handle, dataOffset, size));
        continue;
      case 'K':
        pending.longLink = cString(await readMetadata(handle, dataOffset, size));
        continue;
      case 'g': // global pax headers: nothing in them changes where data lies
        continue;
    }
    const path = normalizeEntryPath(pending.pax.get('path') ?? pending.longName ?? headerName(header));
    const linkName = pending.pax.get('linkpath') ?? pending.longLink ?? cString(header.subarray(157, 257));
    pending = { pax: new Map() };
    if (path === undefined) continue;
    if (type === '0' || type === '\0' || type === '7') {
      files.set(path, { offset: dataOffset, size });
      links.delete(path);
    } else if (type === '1' || type === '2') {
      links.set(path, { target: linkName, symbolic: type === '2' });
      files.delete(path);
    }
  }
}

/** "./blobs/sha256/ab" → "blobs/sha256/ab"; undefined for the root or a path escaping it. */
export function normalizeEntryPath(raw: string): string | undefined {
  const normalized = posix.normalize(`/${raw}`).slice(1).replace(/\/+$/, '');
  return normalized === '' ? undefined : normalized;
}

function isMember(type: string): boolean {
  return type !== 'x' && type !== 'g' && type !== 'L' && type !== 'K';
}

function resolveLinks(files: Map<string, TarEntry>, links: Map<string, Link>): Map<string, TarEntry> {
  for (const [path, link] of links) {
    let current: string | undefined = path;
    let currentLink: Link | undefined = link;
    for (let depth = 0; currentLink !== undefined && current !== undefined && depth < maxLinkDepth; depth++) {
      current = currentLink.symbolic ? normalizeEntryPath(posix.join(posix.dirname(current), currentLink.target)) : normalizeEntryPath(currentLink.target);
      currentLink = current === undefined ? undefined : links.get(current);
    }
    const target = current === undefined ? undefined : files.get(current);
    if (target !== undefined) files.set(path, target);
  }
  return files;
}

async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) throw new TarFormatError(`archive ends unexpectedly at byte ${position + filled}`);
    filled += bytesRead;
  }
}

async function readMetadata(handle: FileHandle, position: number, size: number): Promise<Buffer> {
  if (size > maxMetadataBytes) throw new TarFormatError(`metadata entry at byte ${position - blockSize} is ${size} bytes, more than ${maxMetadataBytes}`);
  const buffer = Buffer.alloc(size);
  await readFully(handle, buffer, position);
  return buffer;
}

function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** The header checksum: the sum of its bytes with the checksum field read as spaces (some writers sum signed bytes). */
function verifyChecksum(header: Buffer, offset: number): void {
  const stored = parseOctal(header.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < blockSize; index++) {
    const byte = index >= 148 && index < 156 ? 0x20 : (header[index] ?? 0);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw new TarFormatError(`bad header checksum at byte ${offset}: not a tar, or damaged`);
}

/** Numeric header fields: octal text, or GNU base-256 when the high bit of the first byte is set. */
function parseNumeric(header: Buffer, start: number, length: number, offset: number): number {
  const field = header.subarray(start, start + length);
  const first = field[0] ?? 0;
  if ((first & 0x80) === 0) return parseOctal(field);
  if ((first & 0x40) !== 0) throw new TarFormatError(`negative size at byte ${offset}`);
  let value = first & 0x3f;
  for (const byte of field.subarray(1)) value = value * 256 + byte;
  if (!Number.isSafeInteger(value)) throw new TarFormatError(`size too large at byte ${offset}`);
  return value;
}

function parseOctal(field: Buffer): number {
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`invalid octal field "${text.slice(0, 20)}"`);
  return Number.parseInt(text, 8);
}

function parseDecimal(text: string, offset: number): number {
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) throw new TarFormatError(`invalid pax size "${text.slice(0, 20)}" at byte ${offset}`);
  return Number(text);
}

/** Pax records: "<length> <key>=<value>\n", the length counting the whole record. */
function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let position = 0;
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space === -1) break;
    const length = Number(data.toString('latin1', position, space));
    if (!Number.isSafeInteger(length) || length <= space - position) throw new TarFormatError('malformed pax record');
    const record = data.toString('utf8', space + 1, position + length - 1);
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    position += length;
  }
  return records;
}

/** The header's name, with the POSIX ustar prefix when present (GNU headers use those bytes otherwise). */
function headerName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const posixUstar = header.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = posixUstar ? cString(header.subarray(345, 500)) : '';
  return prefix === '' ? name : `${prefix}/${name}`;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}
