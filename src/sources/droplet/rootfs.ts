import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Logger } from '../../log.ts';
import { through } from '../../io/metered-stream.ts';
import type { DropletIndex, RootfsRecord, StoredLayer } from './droplet-index.ts';
import { archiveError, isGzip, storeGzipTarAsLayer, storeTarAsLayer, TarHeaderCheck } from './layer-writer.ts';

export interface RootfsOptions {
  /** The configured rootfs tarball, watched for replacement. */
  path?: string;
  checkIntervalMs: number;
  /** How long compositions on a replaced rootfs stay readable. */
  retentionMs: number;
}

/** Stores a rootfs tarball (.tar or .tar.gz) as a gzip layer. */
export async function storeRootfs(blobs: BlobStore, file: string, signal?: AbortSignal): Promise<StoredLayer> {
  const handle = await open(file, 'r');
  const head = Buffer.alloc(2);
  try {
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  const raw = createReadStream(file);
  const what = `rootfs ${file}`;
  try {
    if (isGzip(head)) return await storeGzipTarAsLayer(blobs, raw, what, signal);
    return await storeTarAsLayer(blobs, through(raw, new TarHeaderCheck(what)), signal);
  } catch (error) {
    throw archiveError(error, what);
  }
}

/**
 * The base layer of every droplet image of one droplet repository: the
 * latest rootfs in the index. A configured file is checked for replacement
 * at most every `checkIntervalMs`, on demand; a changed file is imported in
 * the background while pulls keep using the previous rootfs.
 */
export class RootfsBase {
  readonly #source: string;
  readonly #index: DropletIndex;
  readonly #blobs: BlobStore;
  readonly #options: RootfsOptions;
  readonly #logger: Logger;
  readonly #stopping = new AbortController();
  #lastCheck = Number.NEGATIVE_INFINITY;
  #importing: Promise<void> | undefined;
  #lastFailure: string | undefined;

  constructor(source: string, index: DropletIndex, blobs: BlobStore, options: RootfsOptions, logger: Logger) {
    this.#source = source;
    this.#index = index;
    this.#blobs = blobs;
    this.#options = options;
    this.#logger = logger;
  }

  /** The rootfs to compose on now; waits for the first import when there is none yet. */
  async current(): Promise<RootfsRecord> {
    this.#checkConfiguredFile();
    let latest = await this.#index.rootfs.latest(this.#source);
    if (latest === undefined && this.#importing !== undefined) {
      await this.#importing;
      latest = await this.#index.rootfs.latest(this.#source);
    }
    if (latest !== undefined) return latest;
    const reason =
      this.#lastFailure ??
      (this.#options.path === undefined ? 'no rootfs is configured and none was imported (berth rootfs import FILE)' : 'the rootfs is not imported yet');
    throw new RegistryError('UNKNOWN', `droplet images cannot be composed: ${reason}`, { status: 503 });
  }

  /** Imports a rootfs tarball and makes it the base of every image from now on. */
  async import(file: string, origin = `import:${resolve(file)}`, signal?: AbortSignal): Promise<RootfsRecord> {
    const layer = await storeRootfs(this.#blobs, file, signal);
    const record: RootfsRecord = { ...layer, origin, importedAt: new Date() };
    await this.#index.rootfs.add(this.#source, record, this.#options.retentionMs);
    this.#logger.info({ rootfs: layer.digest, diffId: layer.diffId, size: layer.size, origin }, 'rootfs imported: new droplet images use it');
    return record;
  }

  /** Starts the import of a configured file that changed since it was last imported. */
  #checkConfiguredFile(): void {
    const path = this.#options.path;
    const now = Date.now();
    if (path === undefined || this.#importing !== undefined || this.#stopping.signal.aborted) return;
    if (now - this.#lastCheck < this.#options.checkIntervalMs) return;
    this.#lastCheck = now;
    const work = this.#importIfChanged(path).catch((error: unknown) => {
      if (this.#stopping.signal.aborted) {
        this.#logger.info({ path }, 'rootfs import stopped by shutdown; it starts again with the next pull');
        return;
      }
      this.#lastFailure = `importing the rootfs ${path} failed: ${error instanceof Error ? error.message : String(error)}`;
      this.#logger.error({ err: error, path }, 'rootfs import failed; pulls keep using the previous rootfs');
    });
    this.#importing = work.finally(() => {
      this.#importing = undefined;
    });
  }

  async #importIfChanged(path: string): Promise<void> {
    const origin = await fileOrigin(path);
    if ((await this.#index.rootfs.byOrigin(this.#source, origin)) !== undefined) return;
    this.#logger.info({ path }, 'rootfs file is new or replaced: importing it');
    await this.import(path, origin, this.#stopping.signal);
    this.#lastFailure = undefined;
  }

  /** Waits for a background import in progress (tests). */
  async settled(): Promise<void> {
    await this.#importing;
  }

  /** Stops a background import (it is redone at the next start) and waits for it to give up. */
  async close(): Promise<void> {
    this.#stopping.abort(new Error('shutting down'));
    await this.#importing;
  }
}

/** A file's identity: path, size, modification time and inode, so that a replaced file is noticed without reading it. */
async function fileOrigin(path: string): Promise<string> {
  const absolute = resolve(path);
  const info = await stat(absolute);
  return `file:${absolute}:${info.size}:${info.mtimeMs}:${info.ino}`;
}
