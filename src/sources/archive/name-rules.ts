import { readdir, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';

/**
 * File names taken for archives. Contents decide the format (OCI layout or
 * Docker archive, gzip or not); the extension only says "this is an archive".
 */
export const archiveExtensions = ['.oci', '.oci.gz', '.tar', '.tar.gz', '.tgz'] as const;

/** An archive file as the rules see it: its path and its name without the extension. */
export interface ArchiveFile {
  path: string;
  stem: string;
}

/** The stem of an archive file name; undefined for other files and hidden ones (editors' and copy tools' temp files). */
export function archiveStem(fileName: string): string | undefined {
  if (fileName.startsWith('.')) return undefined;
  const extension = archiveExtensions.find((candidate) => fileName.endsWith(candidate));
  if (extension === undefined || fileName.length === extension.length) return undefined;
  return fileName.slice(0, -extension.length);
}

/**
 * The archive files that may hold images of one name, from the two
 * directories the rules look in: `<name>/` and the directory beside it.
 * Listed on each request (through DirectoryListings), so new and removed
 * files count at once, on NFS too.
 */
export class NameArchives {
  readonly #inside: ArchiveFile[];
  readonly #beside: ArchiveFile[];
  readonly #base: string;

  private constructor(inside: ArchiveFile[], beside: ArchiveFile[], base: string) {
    this.#inside = inside;
    this.#beside = beside;
    this.#base = base;
  }

  /** Lists the candidates for `name` (relative to the source's prefix) under `root`. */
  static async list(root: string, name: string, listings: DirectoryListings): Promise<NameArchives> {
    const base = posix.basename(name);
    const [inside, beside] = await Promise.all([listings.list(join(root, name)), listings.list(join(root, posix.dirname(name)))]);
    const own = beside.filter((file) => file.stem === base || file.stem.startsWith(`${base}:`));
    return new NameArchives(inside, own, base);
  }

  get isEmpty(): boolean {
    return this.#inside.length === 0 && this.#beside.length === 0;
  }

  /**
   * The candidates in the seed's order, one group per rule:
   *   1. `<name>/<reference>.oci`   2. `<name>/*.oci`
   *   3. `<name>:<reference>.oci`   4. `<name>:*.oci`   5. `<name>.oci`
   * Without a reference (tag listing, lookups by digest) rules 1 and 3 add
   * nothing to the globs. A file appears in one group only.
   */
  groups(reference?: string): ArchiveFile[][] {
    const exact = `${this.#base}:${reference}`;
    const colon = this.#beside.filter((file) => file.stem.startsWith(`${this.#base}:`));
    const plain = this.#beside.filter((file) => file.stem === this.#base);
    if (reference === undefined) return [this.#inside, colon, plain];
    return [
      this.#inside.filter((file) => file.stem === reference),
      this.#inside.filter((file) => file.stem !== reference),
      colon.filter((file) => file.stem === exact),
      colon.filter((file) => file.stem !== exact),
      plain,
    ];
  }
}

/**
 * The names (relative to the prefix) under which the rules reach an
 * archive at `relativePath`; the inverse of NameArchives, for the catalog.
 * `app/1.0.oci` is reached as `app` (rules 1–2) and as `app/1.0` (rule 5)
 * where that is a valid name; `app:1.0.oci` as `app`; `app.oci` as `app`.
 */
export function namesReaching(relativePath: string): string[] {
  const directory = posix.dirname(relativePath);
  const stem = archiveStem(posix.basename(relativePath));
  if (stem === undefined) return [];
  const inDirectory = (name: string) => (directory === '.' ? name : `${directory}/${name}`);
  const names: string[] = [];
  if (directory !== '.') names.push(directory);
  const colon = stem.indexOf(':');
  names.push(inDirectory(colon === -1 ? stem : stem.slice(0, colon)));
  return names;
}

/** A directory whose modification time is this recent may change again within the same timestamp tick. */
const settledMs = 1000;

/**
 * Archive files per directory, listed again whenever the directory's
 * modification time or inode changes (adding, removing or renaming a file
 * changes them). A directory changed within the last second is listed on
 * every call: its timestamp cannot tell two changes in one tick apart.
 * Changes inside an archive do not touch the directory: the candidates'
 * own stats catch them.
 */
export class DirectoryListings {
  readonly #cache = new Map<string, { mtimeMs: number; ino: number; files: ArchiveFile[] }>();

  async list(directory: string): Promise<ArchiveFile[]> {
    const stats = await stat(directory).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    if (stats === undefined || !stats.isDirectory()) {
      this.#cache.delete(directory);
      return [];
    }
    const cached = this.#cache.get(directory);
    if (cached !== undefined && cached.mtimeMs === stats.mtimeMs && cached.ino === stats.ino) return cached.files;
    const files = await listArchives(directory);
    if (Date.now() - stats.mtimeMs > settledMs) this.#cache.set(directory, { mtimeMs: stats.mtimeMs, ino: stats.ino, files });
    else this.#cache.delete(directory);
    return files;
  }
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function listArchives(directory: string): Promise<ArchiveFile[]> {
  let entries;
  try {
    entries = await readdir(directory, { withFileTypes: true });
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
  const files: ArchiveFile[] = [];
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const stem = archiveStem(entry.name);
    if (stem !== undefined) files.push({ path: join(directory, entry.name), stem });
  }
  return files;
}
