import { z } from 'zod';
import { byteSize, duration } from './units.ts';

const fiveMiB = 5 * 1024 * 1024;

/** `storage.s3`: blobs in an S3-compatible bucket (docs/configuration.md, "Scale-out"). */
export const s3Settings = z
  .strictObject({
    bucket: z.string().min(1).optional(),
    /** Prepended to every key; lets one bucket hold several registries or other data. */
    prefix: z.string().default(''),
    region: z.string().min(1).default('us-east-1'),
    /** An S3-compatible store's URL (MinIO, Ceph, R2…); AWS when absent. */
    endpoint: z.url({ protocol: /^https?$/ }).optional(),
    forcePathStyle: z.boolean().default(false),
    /** Static credentials; when absent, the standard AWS chain (environment, profile, web identity, instance role). */
    credentials: z
      .strictObject({
        accessKeyId: z.string().min(1),
        secretAccessKey: z.string().min(1),
        sessionToken: z.string().min(1).optional(),
      })
      .optional(),
    /** Multipart part size; each upload in flight buffers up to two parts. */
    partSize: byteSize.default(8 * 1024 * 1024).refine((bytes) => bytes >= fiveMiB && bytes <= 5 * 1024 ** 3, 'must be between 5MiB and 5GiB'),
    /** How long a blob redirect URL stays valid. */
    presignExpiry: duration.prefault('15m').refine((ms) => ms >= 1000 && ms <= 7 * 86_400_000, 'must be between 1s and 7d'),
    /** Longest wait for the store to answer a request (until its response headers); then the request fails with 503. 0 for no limit. */
    requestTimeout: duration.prefault('30s'),
    /** Multipart uploads left this long (crashed appends) are aborted; 0 leaves it to a bucket lifecycle rule. */
    multipartExpiry: duration.prefault('24h'),
  })
  .prefault({});

/** `metadata.postgres`: the namespace in PostgreSQL, shared by replicas. */
export const postgresSettings = z
  .strictObject({
    /** postgres://user:password@host:port/database?sslmode=…; fields below override its parts. */
    url: z.string().min(1).optional(),
    /** Host name, or the directory of a unix socket. */
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().optional(),
    /** Require TLS to the server (or use sslmode in `url`). */
    ssl: z.boolean().optional(),
    pool: z
      .strictObject({
        /** Connections per replica; the server's max_connections must cover all replicas. */
        max: z.number().int().min(1).default(10),
        idleTimeout: duration.prefault('30s'),
        connectionTimeout: duration.prefault('10s'),
      })
      .prefault({}),
    /** Longest a single statement may run; 0 for no limit. */
    statementTimeout: duration.prefault('30s'),
  })
  .prefault({});

/** A check that a setting is present when `driver` is chosen, reported at `path`. */
export function requireWhenDriver<T extends { driver: string }>(driver: string, present: (value: T) => boolean, path: string[], alternative = '') {
  return (value: T, context: z.RefinementCtx): void => {
    if (value.driver !== driver || present(value)) return;
    // A fresh array each time: zod prefixes an issue's path in place with the keys above it.
    context.addIssue({ code: 'custom', path: [...path], message: `required when driver is ${driver}${alternative}` });
  };
}
