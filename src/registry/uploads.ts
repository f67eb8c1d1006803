import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobStore } from '../blobs/blob-store.ts';
import { RegistryError } from '../errors/registry-error.ts';
import type { MetaStore, UploadSession } from '../meta/meta-store.ts';
import { algorithmOf, finishDigest, type Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { digestStream, MeteredStream, through } from '../io/metered-stream.ts';
import { KeyedLock } from './keyed-lock.ts';
import type { ChunkBounds, UploadState } from './repository.ts';
import type { WritePolicy } from './write-policy.ts';
import { checkDigest } from '../io/digest-check.ts';

/** A running sha256 of an upload's bytes, valid while `size` matches the session. */
interface RunningHash {
  hash: Hash;
  size: number;
}

/**
 * Upload sessions: bytes in the BlobStore's upload area, state in the
 * MetaStore, so any replica can continue any upload. The running hash is
 * an in-process shortcut; a replica without it re-reads the bytes.
 */
export class Uploads {
  readonly #blobs: BlobStore;
  readonly #meta: MetaStore;
  readonly #lock = new KeyedLock();
  readonly #hashes = new Map<string, RunningHash>();
  readonly #maxRunningHashes: number;
  readonly #maxBlobBytes: number | undefined;
  readonly #policy: WritePolicy | undefined;

  constructor(blobs: BlobStore, meta: MetaStore, options: { maxRunningHashes?: number; maxBlobBytes?: number; policy?: WritePolicy } = {}) {
    this.#blobs = blobs;
    this.#meta = meta;
    this.#maxRunningHashes = options.maxRunningHashes ?? 4096;
    this.#maxBlobBytes = options.maxBlobBytes;
    this.#policy = options.policy;
  }

  /** A new session. Its id is a random UUID (122 random bits): unguessable, so it can serve as the upload's capability. */
  async start(repository: RepositoryName, owner?: string): Promise<UploadState> {
    await this.#policy?.admitUpload?.(repository);
    const id = randomUUID();
    const now = new Date();
    await this.#blobs.uploads.create(id);
    await this.#meta.uploads.create({ id, repository, size: 0, startedAt: now, updatedAt: now, ...(owner === undefined ? {} : { owner }) });
    this.#remember(id, { hash: createHash('sha256'), size: 0 });
    return { id, size: 0, ...(owner === undefined ? {} : { owner }) };
  }

  async status(repository: RepositoryName, id: string): Promise<UploadState> {
    const session = await this.#session(repository, id);
    return { id, size: session.size, ...(session.owner === undefined ? {} : { owner: session.owner }) };
  }

  async append(repository: RepositoryName, id: string, body: Readable, bounds: ChunkBounds, signal?: AbortSignal): Promise<UploadState> {
    return this.#lock.run(id, async () => {
      const session = await this.#session(repository, id);
      return { id, size: await this.#write(session, body, bounds, signal) };
    });
  }

  async finish(repository: RepositoryName, id: string, digest: Digest, body: Readable | undefined, bounds: ChunkBounds, signal?: AbortSignal): Promise<number> {
    return this.#lock.run(id, async () => {
      const session = await this.#session(repository, id);
      const size = body === undefined || bounds.length === 0 ? session.size : await this.#write(session, body, bounds, signal);
      const actual = await this.#digest(id, size, digest, signal);
      if (actual !== digest) await this.#drop(id);
      checkDigest(digest, actual, () => `uploaded content has digest ${actual}, not ${digest}`);
      if (this.#policy?.admitBlob !== undefined) {
        await this.#policy.admitBlob(repository, digest, size).catch(async (error: unknown) => {
          await this.#drop(id);
          throw error;
        });
      }
      await this.#blobs.uploads.commit(id, digest, size);
      await this.#meta.blobs.link(repository, digest, size);
      await this.#meta.uploads.delete(id);
      this.#hashes.delete(id);
      return size;
    });
  }

  async cancel(repository: RepositoryName, id: string): Promise<void> {
    await this.#lock.run(id, async () => {
      await this.#session(repository, id);
      await this.#drop(id);
    });
  }

  async #write(session: UploadSession, body: Readable, bounds: ChunkBounds, signal: AbortSignal | undefined): Promise<number> {
    const expectedLength = chunkLength(session, bounds);
    let running = this.#hashes.get(session.id);
    if (running !== undefined && running.size !== session.size) {
      this.#hashes.delete(session.id);
      running = undefined;
    }
    if (running === undefined && session.size === 0) {
      running = { hash: createHash('sha256'), size: 0 };
      this.#remember(session.id, running);
    }
    const before = running?.hash.copy();
    let size: number;
    try {
      const room = this.#maxBlobBytes === undefined ? undefined : this.#maxBlobBytes - session.size;
      if (room !== undefined && expectedLength !== undefined && expectedLength > room) throw blobTooLarge(this.#maxBlobBytes as number);
      const metered = new MeteredStream(running?.hash, expectedLength, room === undefined ? undefined : { limit: room, error: () => blobTooLarge(this.#maxBlobBytes as number) });
      size = await this.#blobs.uploads.append(session.id, session.size, through(body, metered), signal);
    } catch (error) {
      if (running !== undefined && before !== undefined) running.hash = before;
      throw error;
    }
    if (!(await this.#meta.uploads.advance(session.id, session.size, size))) {
      this.#hashes.delete(session.id);
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload was changed by another request; ask for its status and resume', {
        status: 416,
        detail: { id: session.id },
      });
    }
    if (running !== undefined) running.size = size;
    return size;
  }

  async #digest(id: string, size: number, expected: Digest, signal: AbortSignal | undefined): Promise<Digest> {
    const algorithm = algorithmOf(expected);
    const running = this.#hashes.get(id);
    if (running !== undefined && running.size === size && algorithm === 'sha256') {
      return finishDigest(running.hash, algorithm);
    }
    return (await digestStream(await this.#blobs.uploads.read(id, signal, size), algorithm)).digest;
  }

  async #session(repository: RepositoryName, id: string): Promise<UploadSession> {
    const session = await this.#meta.uploads.get(id);
    // An upload belongs to the repository it was started in; elsewhere it does not exist.
    if (session === undefined || session.repository !== repository) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id: id.slice(0, 128) } });
    }
    return session;
  }

  async #drop(id: string): Promise<void> {
    this.#hashes.delete(id);
    await this.#meta.uploads.delete(id);
    await this.#blobs.uploads.remove(id);
  }

  #remember(id: string, running: RunningHash): void {
    if (this.#hashes.size >= this.#maxRunningHashes) {
      const oldest = this.#hashes.keys().next().value;
      if (oldest !== undefined) this.#hashes.delete(oldest);
    }
    this.#hashes.set(id, running);
  }
}

function blobTooLarge(limit: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `blobs larger than ${limit} bytes are not accepted here (limits.maxBlobBytes)`, {
    status: 413,
    detail: { limit },
  });
}

/** The chunk's length when the client declared it, after checking it starts where the upload ends. */
function chunkLength(session: UploadSession, bounds: ChunkBounds): number | undefined {
  if (bounds.start !== undefined && bounds.start !== session.size) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `chunk starts at ${bounds.start} but the upload holds ${session.size} bytes`, {
      status: 416,
      detail: { id: session.id, size: session.size, start: bounds.start },
    });
  }
  if (bounds.start !== undefined && bounds.end !== undefined) {
    const rangeLength = bounds.end - bounds.start + 1;
    if (bounds.length !== undefined && bounds.length !== rangeLength) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `Content-Range covers ${rangeLength} bytes but Content-Length is ${bounds.length}`);
    }
    return rangeLength;
  }
  return bounds.length;
}
