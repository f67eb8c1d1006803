import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlobStore, ByteRange } from '../../blobs/blob-store.ts';
import { isUpstreamError, UpstreamError } from '../../client/errors.ts';
import { RegistryError } from '../../errors/registry-error.ts';
import type { Logger } from '../../log.ts';
import type { MetaStore } from '../../meta/meta-store.ts';
import { algorithmOf, finishDigest, type Digest } from '../../oci/digest.ts';
import type { RepositoryName } from '../../oci/names.ts';
import { SpoolReader } from './spool-reader.ts';
import { checkDigest } from '../../io/digest-check.ts';

/** The upstream body of a blob, from `offset` on. */
export type UpstreamBlobOpener = (offset: number, size: number | undefined) => Promise<{ stream: Readable; total: number | undefined }>;

export interface FillContext {
  blobs: BlobStore;
  meta: MetaStore;
  spoolDir: string;
  logger: Logger;
  /** Give up on an upstream body that sends nothing for this long. */
  idleTimeoutMs: number;
  /** Aborted when the registry shuts down. */
  signal: AbortSignal;
  /** Called once a blob is stored and linked. */
  onStored?: () => void;
}

/** Tries at a body that breaks off mid-way; each resumes where the last stopped. */
const maxAttempts = 5;

/**
 * One blob being fetched from upstream into the cache. Bytes go to the
 * BlobStore's upload area and to an anonymous spool file at once; any
 * number of readers follow the spool at their own pace, so a client is
 * served while the fill runs and a slow or vanished client neither slows
 * nor stops it. The blob is linked only after its digest checks out, and
 * readers get the last byte only then, so no client ever receives a
 * complete body that turns out to be wrong.
 */
export class BlobFill {
  readonly digest: Digest;
  readonly repositories = new Set<RepositoryName>();
  /** Resolves with the blob's size as soon as the upstream says it. */
  readonly size: Promise<number>;
  /** Resolves when the blob is stored and linked; rejects when the fill failed. */
  readonly done: Promise<void>;
  #knownSize: number | undefined;
  #written = 0;
  #state: 'running' | 'stored' | 'failed' = 'running';
  #error: unknown;
  #spool: FileHandle | undefined;
  #readers = 0;
  #change = Promise.withResolvers<void>();
  readonly #resolveSize: (size: number) => void;
  readonly #rejectSize: (error: unknown) => void;
  readonly #context: FillContext;

  constructor(digest: Digest, repository: RepositoryName, context: FillContext, upstream: UpstreamBlobOpener) {
    this.digest = digest;
    this.repositories.add(repository);
    this.#context = context;
    const size = Promise.withResolvers<number>();
    this.size = size.promise;
    this.#resolveSize = size.resolve;
    this.#rejectSize = size.reject;
    this.size.catch(() => undefined);
    this.done = this.#run(upstream);
    this.done.catch(() => undefined);
  }

  /** Bytes readers may have: all once stored, one short of what arrived before (the last waits for the check). */
  get readable(): number {
    return this.#state === 'stored' ? (this.#knownSize ?? this.#written) : Math.max(0, this.#written - 1);
  }

  get failure(): unknown {
    return this.#state === 'failed' ? this.#error : undefined;
  }

  get stored(): boolean {
    return this.#state === 'stored';
  }

  get spool(): FileHandle | undefined {
    return this.#spool;
  }

  /** Resolves on the next progress, completion or failure. */
  changed(): Promise<void> {
    return this.#change.promise;
  }

  /** A reader of the blob (or a range of it); undefined once the spool is gone (read the store then). */
  async reader(range: ByteRange | undefined): Promise<Readable | undefined> {
    const size = await this.size;
    if (this.#spool === undefined) return undefined;
    this.#readers += 1;
    return new SpoolReader(this, range?.start ?? 0, range?.end ?? size - 1, () => this.#release());
  }

  #release(): void {
    this.#readers -= 1;
    this.#closeSpoolWhenUnused();
  }

  async #run(upstream: UpstreamBlobOpener): Promise<void> {
    const { blobs, meta, spoolDir, signal } = this.#context;
    const spoolPath = join(spoolDir, `fill-${randomUUID()}`);
    const uploadId = randomUUID();
    let uploadCreated = false;
    try {
      await mkdir(spoolDir, { recursive: true });
      this.#spool = await open(spoolPath, 'w+');
      // Anonymous from here on: readers share the open handle, and a crash leaves nothing behind.
      await unlink(spoolPath);
      await blobs.uploads.create(uploadId);
      uploadCreated = true;
      const toStore = new PassThrough({ highWaterMark: 1024 * 1024 });
      // Failing the fill destroys this stream, maybe before the store has started reading it.
      toStore.on('error', () => undefined);
      const storing = blobs.uploads.append(uploadId, 0, toStore, signal);
      storing.catch(() => undefined);
      const hash = createHash(algorithmOf(this.digest));
      try {
        await this.#download(upstream, hash, toStore, storing);
      } catch (error) {
        toStore.destroy(error as Error);
        throw error;
      }
      toStore.end();
      const stored = await storing;
      const actual = finishDigest(hash, algorithmOf(this.digest));
      checkDigest(this.digest, actual, () => `upstream sent content with digest ${actual} for blob ${this.digest}`);
      if (stored !== this.#written) {
        throw new RegistryError('DIGEST_INVALID', `blob ${this.digest}: ${this.#written} bytes came from upstream, ${stored} were stored`);
      }
      await blobs.uploads.commit(uploadId, this.digest);
      uploadCreated = false;
      for (const repository of this.repositories) await meta.blobs.link(repository, this.digest, this.#written);
      this.#knownSize ??= this.#written;
      this.#resolveSize(this.#written);
      this.#state = 'stored';
      this.#context.onStored?.();
    } catch (error) {
      this.#state = 'failed';
      this.#error = error;
      this.#rejectSize(error);
      if (uploadCreated) await blobs.uploads.remove(uploadId).catch(() => undefined);
      this.#context.logger.warn({ err: error, digest: this.digest }, 'caching a blob from upstream failed');
      throw error;
    } finally {
      this.#notify();
      this.#closeSpoolWhenUnused();
    }
  }

  /** Reads the upstream body into the spool and the store, resuming after a break. */
  async #download(upstream: UpstreamBlobOpener, hash: ReturnType<typeof createHash>, toStore: PassThrough, storing: Promise<number>): Promise<void> {
    // Settles only if the store gives up while we wait for it to drain.
    const storeFailed = storing.then(() => undefined);
    storeFailed.catch(() => undefined);
    for (let attempt = 1; ; attempt += 1) {
      try {
        const { stream, total } = await upstream(this.#written, this.#knownSize);
        if (this.#knownSize === undefined && total !== undefined) {
          this.#knownSize = total;
          this.#resolveSize(total);
        }
        for await (const chunk of withIdleTimeout(stream, this.#context.idleTimeoutMs)) {
          const bytes = chunk as Buffer;
          if (this.#knownSize !== undefined && this.#written + bytes.length > this.#knownSize) {
            throw new RegistryError('SIZE_INVALID', `upstream sent more than ${this.#knownSize} bytes for blob ${this.digest}`);
          }
          hash.update(bytes);
          await (this.#spool as FileHandle).write(bytes, 0, bytes.length, this.#written);
          this.#written += bytes.length;
          if (!toStore.write(bytes)) await Promise.race([once(toStore, 'drain'), storeFailed]);
          this.#notify();
        }
        if (this.#knownSize === undefined || this.#written === this.#knownSize) return;
        throw new UpstreamError(`upstream ended blob ${this.digest} after ${this.#written} of ${this.#knownSize} bytes`, { temporary: true });
      } catch (error) {
        const resumable = isUpstreamError(error) ? error.temporary : isStreamBreak(error);
        if (!resumable || attempt >= maxAttempts || this.#context.signal.aborted) throw error;
        this.#context.logger.debug({ err: error, digest: this.digest, offset: this.#written, attempt }, 'upstream blob body broke off; resuming');
        await sleep(Math.min(200 * 2 ** (attempt - 1), 5000), undefined, { signal: this.#context.signal });
      }
    }
  }

  #notify(): void {
    const previous = this.#change;
    this.#change = Promise.withResolvers<void>();
    previous.resolve();
  }

  #closeSpoolWhenUnused(): void {
    if (this.#state === 'running' || this.#readers > 0 || this.#spool === undefined) return;
    const spool = this.#spool;
    this.#spool = undefined;
    spool.close().catch(() => undefined);
  }
}

/** A connection that dies mid-body surfaces as a plain error from the stream, not an UpstreamError. */
function isStreamBreak(error: unknown): boolean {
  if (error instanceof RegistryError) return false;
  const code = (error as { code?: string } | undefined)?.code;
  return code === undefined || code.startsWith('UND_ERR') || code === 'ECONNRESET' || code === 'EPIPE' || code === 'ETIMEDOUT' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/** Iterates a stream, failing it when no data arrives for `timeoutMs`. */
async function* withIdleTimeout(stream: Readable, timeoutMs: number): AsyncGenerator<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stream.destroy(new UpstreamError(`upstream sent nothing for ${timeoutMs} ms`, { temporary: true })), timeoutMs);
  };
  try {
    arm();
    for await (const chunk of stream) {
      arm();
      yield chunk;
    }
  } finally {
    clearTimeout(timer);
  }
}
