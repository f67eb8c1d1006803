import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { open, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { BlobStore } from '../../blobs/blob-store.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Logger } from '../../log.ts';
import type { DropletStore, RootfsEntry, RootfsRecord, StoredLayer } from '../../meta/droplet-store.ts';
import type { Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import { through } from '../../io/metered-stream.ts';
import { writeBlob } from '../../registry/blob-writer.ts';
import { composeRootfsImage } from './image.ts';
import { archiveError, isGzip, storeGzipTarAsLayer, storeTarAsLayer, TarHeaderCheck } from './layer-writer.ts';

export interface RootfsOptions {
  /** The configured rootfs tarball, watched for replacement. */
  path?: string;
  checkIntervalMs: number;
  /** How long compositions on a replaced rootfs stay readable. */
  retentionMs: number;
  /** `<prefix>rootfs`, where each rootfs is kept as an image of its own. */
  repository: RepositoryName;
  architecture: string;
  /**
   * Who imports a replaced configured file. `on-demand` (one worker): checked
   * when pulls need the rootfs. `scheduled` (the leader of several workers):
   * also checked every `checkIntervalMs`, since pulls may reach other workers.
   * `elsewhere` (the other workers): never here; they read what was imported.
   */
  importer?: 'on-demand' | 'scheduled' | 'elsewhere';
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
 * latest rootfs in the store. A configured file is checked for replacement
 * at most every `checkIntervalMs`, on demand; a changed file is imported in
 * the background while pulls keep using the previous rootfs. The latest
 * only moves forward: a rootfs whose content the prefix had before becomes
 * the latest again only through `rollback`.
 */
export class RootfsBase {
  readonly #source: string;
  readonly #store: DropletStore;
  readonly #blobs: BlobStore;
  readonly #options: RootfsOptions;
  readonly #logger: Logger;
  readonly #stopping = new AbortController();
  #lastCheck = Number.NEGATIVE_INFINITY;
  #lastExpiry = Number.NEGATIVE_INFINITY;
  #importing: Promise<void> | undefined;
  #lastFailure: string | undefined;
  /** The configured file's identity last imported or found recorded by this process. */
  #knownOrigin: string | undefined;
  #schedule: NodeJS.Timeout | undefined;

  constructor(source: string, store: DropletStore, blobs: BlobStore, options: RootfsOptions, logger: Logger) {
    this.#source = source;
    this.#store = store;
    this.#blobs = blobs;
    this.#options = options;
    this.#logger = logger;
    if (options.importer === 'scheduled' && options.path !== undefined) {
      this.#checkConfiguredFile();
      this.#schedule = setInterval(() => this.#checkConfiguredFile(), Math.max(options.checkIntervalMs, 1000));
      this.#schedule.unref();
    }
  }

  /** The rootfs to compose on now; waits for the first import when there is none yet. */
  async current(): Promise<RootfsRecord> {
    this.#checkConfiguredFile();
    await this.#expire();
    let latest = await this.#store.rootfs.latest(this.#source);
    if (latest === undefined && this.#importing !== undefined) {
      await this.#importing;
      latest = await this.#store.rootfs.latest(this.#source);
    }
    if (latest !== undefined) return latest;
    const reason =
      this.#lastFailure ?? (this.#options.path === undefined ? 'no rootfs is configured and none was imported (berth rootfs import FILE)' : 'the rootfs is not imported yet');
    throw new RegistryError('UNKNOWN', `droplet images cannot be composed: ${reason}`, { status: 503 });
  }

  /**
   * Imports a rootfs tarball; it becomes the base of every image from now on
   * when its content is new to the prefix (`latest: true`). A rootfs the
   * prefix had before is stored but does not become the latest again.
   */
  async import(file: string, origin = `import:${resolve(file)}`, signal?: AbortSignal): Promise<RootfsRecord & { latest: boolean }> {
    const layer = await storeRootfs(this.#blobs, file, signal);
    const record: RootfsRecord = { ...layer, origin, importedAt: new Date() };
    const latest = await this.#store.rootfs.add(this.#source, record, await this.#rootfsImage(layer, signal), this.#options.retentionMs);
    if (latest) {
      this.#logger.info({ rootfs: layer.digest, diffId: layer.diffId, size: layer.size, origin }, 'rootfs imported: new droplet images use it');
      await this.#expire(true);
    } else {
      const current = await this.#store.rootfs.latest(this.#source);
      this.#logger.info(
        { rootfs: layer.digest, latest: current?.digest, origin },
        'this rootfs was imported before: the latest rootfs does not go back (berth rootfs rollback does that on purpose)',
      );
    }
    return { ...record, latest };
  }

  /**
   * Makes an earlier rootfs the latest again: `digest`, or the one imported
   * before the current one. Its layer must still be stored.
   */
  async rollback(digest?: Digest, signal?: AbortSignal): Promise<RootfsRecord> {
    const history = await this.#store.rootfs.history(this.#source);
    const current = history.find((entry) => entry.expiresAt === undefined);
    const target =
      digest === undefined ? history.find((entry) => entry.expiresAt !== undefined && entry.digest !== current?.digest) : history.find((entry) => entry.digest === digest);
    if (target === undefined) {
      throw new Error(digest === undefined ? `prefix "${this.#source}" has no earlier rootfs to roll back to` : `prefix "${this.#source}" never had the rootfs ${digest}`);
    }
    if ((await this.#blobs.stat(target.digest, signal)) !== target.size) {
      throw new Error(
        `the layer of rootfs ${target.digest} is no longer stored (garbage collected after its retention); roll back to its file instead: berth rootfs rollback --file FILE`,
      );
    }
    const record = await this.#store.rootfs.rollback(this.#source, target.digest, await this.#rootfsImage(target, signal), this.#options.retentionMs, new Date());
    if (record === undefined) throw new Error(`prefix "${this.#source}" never had the rootfs ${target.digest}`);
    this.#logger.info({ rootfs: record.digest, previous: current?.digest }, 'rootfs rolled back: new droplet images use an earlier rootfs');
    return record;
  }

  /** Every rootfs the prefix has had, newest import first. */
  history(): Promise<RootfsEntry[]> {
    return this.#store.rootfs.history(this.#source);
  }

  /** The rootfs as an image of its own, its config stored. */
  async #rootfsImage(layer: StoredLayer, signal?: AbortSignal) {
    const { configBytes, ...image } = composeRootfsImage(this.#options.repository, layer, this.#options.architecture);
    if ((await this.#blobs.stat(image.config.digest, signal)) === undefined) {
      await writeBlob(this.#blobs, Readable.from([configBytes]), { expected: image.config.digest, ...(signal === undefined ? {} : { signal }) });
    }
    return image;
  }

  /** Forgets compositions whose rootfs retention has passed, at most once per check interval. */
  async #expire(force = false): Promise<void> {
    const now = Date.now();
    if (!force && now - this.#lastExpiry < Math.max(this.#options.checkIntervalMs, 1000)) return;
    this.#lastExpiry = now;
    const removed = await this.#store.compositions.expire(this.#source, new Date(now));
    if (removed > 0) this.#logger.info({ removed }, 'images on a rootfs past its retention forgotten; garbage collection reclaims their blobs');
  }

  /** Starts the import of a configured file that changed since it was last imported. */
  #checkConfiguredFile(): void {
    const path = this.#options.path;
    const now = Date.now();
    if (path === undefined || this.#options.importer === 'elsewhere' || this.#importing !== undefined || this.#stopping.signal.aborted) return;
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

  /**
   * A rootfs records one origin, the last replica's to import it: replicas
   * whose copies of the same file differ in inode or modification time would
   * each see the other's origin and read the file again at every check. So
   * each process also remembers the identity it imported or found recorded.
   */
  async #importIfChanged(path: string): Promise<void> {
    const origin = await fileOrigin(path);
    if (origin === this.#knownOrigin) return;
    if ((await this.#store.rootfs.byOrigin(this.#source, origin)) === undefined) {
      this.#logger.info({ path }, 'rootfs file is new or replaced: importing it');
      await this.import(path, origin, this.#stopping.signal);
    }
    this.#knownOrigin = origin;
    this.#lastFailure = undefined;
  }

  /** Waits for a background import in progress (tests). */
  async settled(): Promise<void> {
    await this.#importing;
  }

  /** Stops a background import (it is redone at the next start) and waits for it to give up. */
  async close(): Promise<void> {
    clearInterval(this.#schedule);
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
