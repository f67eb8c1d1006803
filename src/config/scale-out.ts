import { byteSize, duration } from './units.ts';
import * as z from './zod.ts';

const fiveMiB = 5 * 1024 * 1024;

/** `storage.s3`: blobs in an S3-compatible bucket (docs/configuration.md, "Scale-out"). */
export const s3Settings = z.prefault(
  z.strictObject({
    bucket: z.optional(z.string().check(z.minLength(1))),
    /** Prepended to every key; lets one bucket hold several registries or other data. */
    prefix: z._default(z.string(), ''),
    region: z._default(z.string().check(z.minLength(1)), 'us-east-1'),
    /** An S3-compatible store's URL (MinIO, Ceph, R2…); AWS when absent. */
    endpoint: z.optional(z.url({ protocol: /^https?$/ })),
    forcePathStyle: z._default(z.boolean(), false),
    /** Static credentials; when absent, the standard AWS chain (environment, profile, web identity, instance role). */
    credentials: z.optional(
      z.strictObject({
        accessKeyId: z.string().check(z.minLength(1)),
        secretAccessKey: z.string().check(z.minLength(1)),
        sessionToken: z.optional(z.string().check(z.minLength(1))),
      }),
    ),
    /** Multipart part size; each upload in flight buffers up to two parts. */
    partSize: z._default(byteSize, 8 * 1024 * 1024).check(z.refine((bytes) => bytes >= fiveMiB && bytes <= 5 * 1024 ** 3, 'must be between 5MiB and 5GiB')),
    /** How long a blob redirect URL stays valid. */
    presignExpiry: z.prefault(duration, '15m').check(z.refine((ms) => ms >= 1000 && ms <= 7 * 86_400_000, 'must be between 1s and 7d')),
    /** Longest wait for the store to answer a request (until its response headers); then the request fails with 503. 0 for no limit. */
    requestTimeout: z.prefault(duration, '30s'),
    /** Multipart uploads left this long (crashed appends) are aborted; 0 leaves it to a bucket lifecycle rule. */
    multipartExpiry: z.prefault(duration, '24h'),
  }),
  {},
);

/** `metadata.postgres`: the namespace in PostgreSQL, shared by replicas. */
export const postgresSettings = z.prefault(
  z.strictObject({
    /** postgres://user:password@host:port/database?sslmode=…; fields below override its parts. */
    url: z.optional(z.string().check(z.minLength(1))),
    /** Host name, or the directory of a unix socket. */
    host: z.optional(z.string().check(z.minLength(1))),
    port: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(65535))),
    database: z.optional(z.string().check(z.minLength(1))),
    user: z.optional(z.string().check(z.minLength(1))),
    password: z.optional(z.string()),
    /** Require TLS to the server (or use sslmode in `url`). */
    ssl: z.optional(z.boolean()),
    pool: z.prefault(
      z.strictObject({
        /** Connections per replica; the server's max_connections must cover all replicas. */
        max: z._default(z.number().check(z.int(), z.minimum(1)), 10),
        idleTimeout: z.prefault(duration, '30s'),
        connectionTimeout: z.prefault(duration, '10s'),
      }),
      {},
    ),
    /** Longest a single statement may run; 0 for no limit. */
    statementTimeout: z.prefault(duration, '30s'),
  }),
  {},
);

/** A check that a setting is present when `driver` is chosen, reported at `path`. */
export function requireWhenDriver<T extends { driver: string }>(driver: string, present: (value: T) => boolean, path: string[], alternative = '') {
  return (value: T, context: z.core.$RefinementCtx<T>): void => {
    if (value.driver !== driver || present(value)) return;
    // A fresh array each time: zod prefixes an issue's path in place with the keys above it.
    context.addIssue({ code: 'custom', path: [...path], message: `required when driver is ${driver}${alternative}` });
  };
}
