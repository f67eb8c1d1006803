import { ListObjectsV2Command, S3Client, type _Object } from '@aws-sdk/client-s3';
import type { Logger } from '../../log.ts';

/** How to reach an S3 store: the one client for the blob store and `s3://` layouts. */
export interface S3Connection {
  region: string;
  /** For S3-compatible stores (MinIO, Ceph, R2…); AWS when absent. */
  endpoint?: string | undefined;
  /** `endpoint/bucket/key` instead of `bucket.endpoint/key`. */
  forcePathStyle: boolean;
  /** When absent, the standard AWS chain: environment, profile, web identity, instance role. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string | undefined } | undefined;
  /** Where the SDK's own messages go; without one they are dropped (the SDK would write some to stderr). */
  logger?: Logger | undefined;
}

/**
 * The SDK's logger, writing into Berth's. Without it the SDK prints some
 * warnings with console.warn ("An error was encountered in a non-retryable
 * streaming request."), which breaks JSON-lines logs. Its warnings come with
 * an error the SDK throws, which Berth logs where it handles it, so they are
 * debug-level detail here. Its info and debug output (every command's input
 * and output, as objects) is dropped: it would cost on every request.
 */
export function sdkLogger(logger: Logger | undefined): Record<'trace' | 'debug' | 'info' | 'warn' | 'error', (...content: unknown[]) => void> {
  const write = (...content: unknown[]): void => {
    const text = content.map((part) => (typeof part === 'string' ? part : part instanceof Error ? part.message : '')).filter((part) => part !== '');
    if (text.length > 0) logger?.debug({ component: 'aws-sdk' }, text.join(' '));
  };
  const drop = (): void => undefined;
  return { trace: drop, debug: drop, info: drop, warn: write, error: write };
}

/** Where the bucket is and how to reach it (config `storage.s3`). */
export interface S3Location extends S3Connection {
  bucket: string;
  /** Prepended to every key, so that one bucket can hold other things too. */
  prefix: string;
}

export function createS3Client(location: S3Connection): S3Client {
  return new S3Client({
    region: location.region,
    forcePathStyle: location.forcePathStyle,
    ...(location.endpoint === undefined ? {} : { endpoint: location.endpoint }),
    ...(location.credentials === undefined ? {} : { credentials: staticCredentials(location.credentials) }),
    // Checksums only where S3 requires them: Berth verifies digests itself, and
    // many S3-compatible stores reject the SDK's default streaming checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A store that does not answer fails the request instead of holding it forever.
    // No idle timeout: a slow client legitimately pauses a blob download.
    requestHandler: { connectionTimeout: 10_000 },
    logger: sdkLogger(location.logger),
  });
}

function staticCredentials(credentials: NonNullable<S3Connection['credentials']>) {
  const { accessKeyId, secretAccessKey, sessionToken } = credentials;
  return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
}

/** The prefix as used in keys: empty, or ending in one slash. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  return trimmed === '' ? '' : `${trimmed}/`;
}

/** Every object under `prefix`, in key order, page by page. */
export async function* listObjects(client: S3Client, bucket: string, prefix: string, signal?: AbortSignal): AsyncIterable<_Object> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token === undefined ? {} : { ContinuationToken: token }) }),
      signal === undefined ? {} : { abortSignal: signal },
    );
    for (const item of page.Contents ?? []) yield item;
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
}

/** A missing key or bucket (GET answers NoSuchKey, HEAD only a bare 404). */
export function isNotFound(error: unknown): boolean {
  return errorName(error) === 'NoSuchKey' || errorName(error) === 'NotFound' || httpStatus(error) === 404;
}

/** An operation the S3-compatible store does not implement. */
export function isNotImplemented(error: unknown): boolean {
  return errorName(error) === 'NotImplemented' || httpStatus(error) === 501;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

function httpStatus(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const metadata = error.$metadata as { httpStatusCode?: number } | undefined;
  return metadata?.httpStatusCode;
}
