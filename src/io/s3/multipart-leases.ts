import { randomBytes } from 'node:crypto';
import { DeleteObjectsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { listObjects } from './s3-client.ts';

/** How often a live multipart upload's lease is renewed, and how long it counts as fresh. */
export interface LeaseTiming {
  renewEvery: number;
  freshFor: number;
}

/**
 * The lease timing for a multipart expiry: renewed about four times per
 * expiry (between 1 s and 1 min; every 10 s without an expiry, for the
 * sweep of `berth gc`), fresh for three renewals and never less than 30 s,
 * so that clock differences between replicas and the store, or a busy event
 * loop, cannot make a live upload look abandoned.
 */
export function leaseTiming(multipartExpiry: number): LeaseTiming {
  const renewEvery = multipartExpiry <= 0 ? 10_000 : Math.min(60_000, Math.max(1000, Math.floor(multipartExpiry / 4)));
  return { renewEvery, freshFor: Math.max(3 * renewEvery, 30_000) };
}

/** Ends a lease: stops renewing it and deletes it. */
export type LeaseRelease = () => Promise<void>;

/**
 * Marks multipart uploads that a live process is still writing, as objects
 * `<root><object key>/<random>` written before the upload starts and
 * rewritten while it runs. The sweep aborts an upload only when no fresh
 * lease names its key, whatever the expiry: a long commit on a slow store is
 * never cut in the middle, while the uploads of a process that died lose
 * their lease and are aborted. Each holder has its own lease object, so two
 * replicas writing the same key (the same blob) never end each other's.
 */
export class MultipartLeases {
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #root: string;
  readonly #timing: LeaseTiming;

  constructor(client: S3Client, bucket: string, root: string, timing: LeaseTiming) {
    this.#client = client;
    this.#bucket = bucket;
    this.#root = root;
    this.#timing = timing;
  }

  /** Takes a lease on multipart uploads of `objectKey` and renews it in the background until released. */
  async hold(objectKey: string): Promise<LeaseRelease> {
    const key = `${this.#root}${encodeURIComponent(objectKey)}/${randomBytes(8).toString('hex')}`;
    const write = () => this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key: key, Body: Buffer.alloc(0), ContentLength: 0 }));
    await write();
    // A failed renewal is not fatal: the next one retries, and the lease stays fresh for three renewals.
    const timer = setInterval(() => void write().catch(() => undefined), this.#timing.renewEvery);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await this.#delete([key]).catch(() => undefined);
    };
  }

  /**
   * The object keys with a fresh lease; stale leases (their holder died) are
   * deleted on the way.
   */
  async leasedKeys(now = Date.now()): Promise<Set<string>> {
    const leased = new Set<string>();
    const stale: string[] = [];
    for await (const item of listObjects(this.#client, this.#bucket, this.#root)) {
      if (item.Key === undefined) continue;
      const renewedAt = item.LastModified?.getTime() ?? 0;
      const encoded = item.Key.slice(this.#root.length).split('/', 1)[0] ?? '';
      if (renewedAt > now - this.#timing.freshFor) leased.add(decodeURIComponent(encoded));
      else stale.push(item.Key);
    }
    for (let start = 0; start < stale.length; start += 1000) await this.#delete(stale.slice(start, start + 1000));
    return leased;
  }

  async #delete(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.#client.send(new DeleteObjectsCommand({ Bucket: this.#bucket, Delete: { Objects: keys.map((key) => ({ Key: key })), Quiet: true } }));
  }
}
