import { join, resolve } from 'node:path';
import { authConfig, limitsConfig, tlsConfig } from './auth.ts';
import { uiConfig } from './ui.ts';
import { eventsConfig, gcConfig, immutableTagsConfig, metricsConfig, proxyCacheConfig, quotasConfig, retentionConfig } from './operations.ts';
import { repositoryKinds } from './repositories.ts';
import { postgresSettings, requireWhenDriver, s3Settings } from './scale-out.ts';
import { byteSize, duration, hostPort } from './units.ts';
import * as z from './zod.ts';

/**
 * Berth's whole configuration. Every key can come from the YAML file, from
 * a `BERTH_…` environment variable named after its path (storage.fs.path →
 * BERTH_STORAGE_FS_PATH) or, for a few, from flags. Unknown keys are errors.
 */
export const configSchema = z.strictObject({
  /** Where the registry listens. */
  listen: z._default(hostPort, '127.0.0.1:5000'),
  /** Root of everything stored on local disk by default. */
  dataDir: z._default(z.string().check(z.minLength(1)), 'data'),
  log: z.prefault(
    z.strictObject({
      level: z._default(z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']), 'info'),
      /** `auto`: readable on a terminal, JSON lines otherwise. */
      format: z._default(z.enum(['auto', 'json', 'pretty']), 'auto'),
    }),
    {},
  ),
  storage: z.prefault(
    z
      .strictObject({
        driver: z._default(z.enum(['fs', 's3']), 'fs'),
        fs: z.prefault(z.strictObject({ path: z.optional(z.string().check(z.minLength(1))) }), {}),
        s3: s3Settings,
        /** Answer blob GETs with a 307 to the store when it can (default: on where supported). */
        redirects: z.optional(z.boolean()),
      })
      .check(z.superRefine(requireWhenDriver('s3', (storage) => storage.s3.bucket !== undefined, ['s3', 'bucket']))),
    {},
  ),
  metadata: z.prefault(
    z
      .strictObject({
        driver: z._default(z.enum(['sqlite', 'postgres']), 'sqlite'),
        sqlite: z.prefault(z.strictObject({ path: z.optional(z.string().check(z.minLength(1))) }), {}),
        postgres: postgresSettings,
      })
      .check(
        z.superRefine(
          requireWhenDriver(
            'postgres',
            (metadata) => metadata.postgres.url !== undefined || metadata.postgres.host !== undefined,
            ['postgres', 'url'],
            ' (or set metadata.postgres.host)',
          ),
        ),
      ),
    {},
  ),
  registry: z.prefault(
    z.strictObject({
      /** Whether DELETE of manifests, tags and blobs is allowed. */
      deletes: z._default(z.boolean(), true),
      maxManifestBytes: z._default(byteSize, 4 * 1024 * 1024),
      /** Advertised as OCI-Chunk-Min-Length; default: what the blob store prefers. */
      chunkMinLength: z.optional(byteSize),
      /** Whether `?mount=` without `from` mounts from any repository the caller may pull. */
      autoMount: z._default(z.boolean(), true),
    }),
    {},
  ),
  server: z.prefault(
    z.strictObject({
      /** How long SIGTERM waits for in-flight requests before giving up. */
      shutdownTimeout: z.prefault(duration, '30s'),
      /** Worker threads serving the port (docs/deployment.md, "Workers"); default: as many as the CPUs this process may use. */
      workers: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(256))),
    }),
    {},
  ),
  /** Readiness checks of the metadata database and blob store (docs/operations.md, "Health and readiness"). */
  health: z.prefault(
    z.strictObject({
      /** Time between background checks. */
      interval: z.prefault(duration, '1s').check(z.refine((ms) => ms >= 100 && ms <= 60_000, 'must be between 100ms and 1m')),
      /** A check not answered within this counts as the dependency being down. */
      timeout: z.prefault(duration, '1s').check(z.refine((ms) => ms >= 100 && ms <= 60_000, 'must be between 100ms and 1m')),
    }),
    {},
  ),
  repositories: z._default(z.array(repositoryKinds), []),
  /** Users, tokens and access rules (docs/auth.md). */
  auth: z.prefault(authConfig, {}),
  /** HTTPS (docs/auth.md). */
  tls: z.prefault(tlsConfig, {}),
  /** Request size limits, timeouts and rate limits (docs/auth.md). */
  limits: limitsConfig,
  /** Garbage collection and expired uploads (docs/operations.md). */
  gc: gcConfig,
  /** Retention policies per repository glob (docs/operations.md). */
  retention: retentionConfig,
  /** Storage quotas per repository glob (docs/operations.md). */
  quotas: quotasConfig,
  /** Tags that never move once pushed, per repository glob (docs/operations.md). */
  immutableTags: immutableTagsConfig,
  /** CloudEvents to webhooks (docs/operations.md). */
  events: eventsConfig,
  /** Prometheus metrics (docs/operations.md). */
  metrics: metricsConfig,
  /** The web UI and its JSON API (docs/ui.md). */
  ui: uiConfig,
  /** A size budget for all pull-through caches together (docs/proxy.md). */
  proxyCache: proxyCacheConfig,
});

export type Config = z.output<typeof configSchema>;

/** The users file used when `auth.htpasswd` is not set. */
export function defaultHtpasswdPath(config: Config): string {
  return resolve(config.auth.htpasswd ?? join(config.dataDir, 'htpasswd'));
}
