import S3rver from 's3rver';
import type { S3BlobStoreOptions } from '../../src/blobs/s3/s3-blob-store.ts';
import { tempDir } from './tmp.ts';

/** Where a test S3 server is and how to sign requests to it. */
export interface TestS3 {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Stops the server and deletes everything it stored. */
  close(): Promise<void>;
}

/**
 * An S3-compatible server in this process (s3rver), on a free loopback
 * port, storing under a temp directory, with one empty bucket. It lacks
 * UploadPartCopy, AbortMultipartUpload and ListMultipartUploads, and does
 * not enforce the 5 MiB part minimum: what depends on those needs a real
 * object store (see docs/deployment.md).
 */
export async function startTestS3(bucket = 'berth-test'): Promise<TestS3> {
  const directory = await tempDir('berth-s3');
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: directory.path,
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  serialiseWrites(server.store);
  let address;
  try {
    address = await server.run();
  } catch (error) {
    await directory.remove();
    throw error;
  }
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    bucket,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    async close() {
      await server.close();
      await directory.remove();
    },
  };
}

/**
 * s3rver deletes an object's directory when it empties, without a lock: a
 * PUT of a key beside it (two replicas' upload leases under one blob, say)
 * can find its directory gone between creating it and opening its file, and
 * the write stream's error, which s3rver does not listen for, ends the
 * process. A real object store has no such race; puts and deletes here run
 * one at a time so that the stub has none either.
 */
function serialiseWrites(store: S3rver['store']): void {
  const put = store.putObject.bind(store);
  const remove = store.deleteObject.bind(store);
  let last: Promise<unknown> = Promise.resolve();
  const inTurn = <T>(write: () => Promise<T>): Promise<T> => {
    const done = last.then(write, write);
    last = done.catch(() => undefined);
    return done;
  };
  store.putObject = (object) => inTurn(() => put(object));
  store.deleteObject = (bucket, key) => inTurn(() => remove(bucket, key));
}

/** Driver settings for a store on the test server under `prefix` (5 MiB parts, no background sweep). */
export function s3Options(s3: TestS3, prefix: string): S3BlobStoreOptions {
  return {
    bucket: s3.bucket,
    prefix,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: s3.credentials,
    partSize: 5 * 1024 * 1024,
    presignExpiry: 60_000,
    multipartExpiry: 0,
  };
}

/** Registry settings (as `startTestRegistry` takes them) for blobs on the test server under `prefix`. */
export function s3StorageSettings(s3: TestS3, prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'storage.driver': 's3',
    'storage.s3': { bucket: s3.bucket, prefix, endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials, ...extra },
  };
}
