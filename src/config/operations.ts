import { z } from 'zod';
import { byteSize, duration } from './units.ts';

/**
 * Operations keys (docs/operations.md): garbage collection, retention,
 * quotas, immutable tags, events and metrics.
 */

/** A repository name glob: `*` stays within one path component, `**` crosses them, `?` is one character. */
const repositoryGlob = z
  .string()
  .min(1)
  .regex(/^[a-z0-9._\-/*?]+$/, 'expected a repository name glob such as "team/*" or "prod/**"');

/** A tag glob: `*` is any run of characters, `?` one. */
const tagGlob = z
  .string()
  .min(1)
  .regex(/^[A-Za-z0-9._\-*?]+$/, 'expected a tag glob such as "v*" or "latest"');

const repositoryGlobs = z.array(repositoryGlob).min(1);

export const gcConfig = z
  .strictObject({
    /** How often `berth serve` runs a pass (one replica at a time); 0 turns periodic collection off. */
    interval: duration.prefault('1h'),
    /** Blobs, links and manifests younger than this are never collected: an in-flight push may still need them. */
    gracePeriod: duration.prefault('24h'),
    /** Remove links of layers that no manifest of their repository references (after the grace period). */
    unreferencedLinks: z.boolean().default(true),
    /** Delete manifests that no tag, index or subject makes reachable (after the grace period). */
    untaggedManifests: z.boolean().default(false),
    /** List the blob store for bytes that have no metadata (a crash between write and link). */
    orphans: z.boolean().default(true),
    /** Upload sessions untouched this long are removed, with their bytes (and S3 multipart uploads). */
    uploadExpiry: duration.prefault('24h'),
    /** Rows handled per transaction. */
    batchSize: z.int().min(1).max(10_000).default(500),
    /**
     * The share of its time a pass may work, between 0 and 1: after each
     * batch it rests so that pushes and pulls keep the machine. 1 runs a pass
     * flat out (berth gc --duty 1 for an offline clean-up).
     */
    duty: z.number().gt(0).max(1).default(0.25),
  })
  .prefault({});

const retentionPolicy = z.strictObject({
  repositories: repositoryGlobs,
  /** Keep the N most recently pushed tags. */
  keepLatest: z.int().min(0).optional(),
  /** Always keep tags matching these globs. */
  keepTags: z.array(tagGlob).default([]),
  /** Keep tags (and manifests) pulled within this long. */
  keepPulledWithin: duration.optional(),
  /** Delete manifests without a tag that are older than this (and not reachable from a kept one). */
  untaggedOlderThan: duration.optional(),
});

export const retentionConfig = z
  .strictObject({
    /** How often `berth serve` applies the policies (one replica at a time); 0 leaves it to `berth retention`. */
    interval: duration.prefault('0'),
    /** Log what would be deleted instead of deleting it. */
    dryRun: z.boolean().default(false),
    /** The first policy whose `repositories` match a name applies to it. */
    policies: z.array(retentionPolicy).default([]),
  })
  .prefault({});

const quota = z
  .strictObject({
    /** Named in refusals and in usage reports; default: the globs. */
    name: z.string().min(1).max(100).optional(),
    repositories: repositoryGlobs,
    /** Bytes of distinct blobs and manifests held by all matching repositories together. */
    maxBytes: byteSize.optional(),
    /** How many matching repositories may hold content. */
    maxRepositories: z.int().min(0).optional(),
  })
  .refine((value) => value.maxBytes !== undefined || value.maxRepositories !== undefined, { message: 'set maxBytes, maxRepositories or both' });

const immutableRule = z.strictObject({
  repositories: repositoryGlobs,
  /** Tags matching these globs never move nor get deleted once pushed. */
  tags: z.array(tagGlob).min(1),
});

const eventTypes = z.enum(['push', 'pull', 'delete', 'gc']);

const webhook = z.strictObject({
  /** Names the webhook in logs, metrics and the queue; keep it stable across restarts. */
  name: z.string().regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'expected a name of letters, digits, ".", "_" or "-"'),
  url: z.url({ protocol: /^https?$/ }),
  /** Extra request headers (an Authorization header, say). */
  headers: z.record(z.string(), z.string()).default({}),
  types: z.array(eventTypes).min(1).default(['push', 'pull', 'delete', 'gc']),
  /** Only events of matching repositories (GC events have none and always pass). */
  repositories: z.array(repositoryGlob).default(['**']),
  timeout: duration.prefault('10s'),
  /** Events per request: 1 sends structured mode, more sends batched mode (a JSON array). */
  batchSize: z.int().min(1).max(1000).default(1),
});

export const eventsConfig = z
  .strictObject({
    /** The CloudEvents `source` attribute. */
    source: z.string().min(1).default('/berth'),
    webhooks: z.array(webhook).default([]),
    retry: z
      .strictObject({
        initialDelay: duration.prefault('1s'),
        maxDelay: duration.prefault('5m'),
        /** An event still undelivered this long after it happened is given up (logged and counted). */
        maxAge: duration.prefault('72h'),
      })
      .prefault({}),
  })
  .superRefine((value, context) => {
    const seen = new Set<string>();
    value.webhooks.forEach((hook, index) => {
      if (seen.has(hook.name)) context.addIssue({ code: 'custom', path: ['webhooks', index, 'name'], message: `duplicate webhook name "${hook.name}"` });
      seen.add(hook.name);
    });
  })
  .prefault({});

export const metricsConfig = z
  .strictObject({
    /** Serve Prometheus metrics at /metrics. */
    enabled: z.boolean().default(true),
  })
  .prefault({});

export const quotasConfig = z.array(quota).default([]);
export const immutableTagsConfig = z.array(immutableRule).default([]);

export type GcConfig = z.output<typeof gcConfig>;
export type RetentionConfig = z.output<typeof retentionConfig>;
export type RetentionPolicyConfig = z.output<typeof retentionPolicy>;
export type QuotaConfig = z.output<typeof quota>;
export type ImmutableTagRule = z.output<typeof immutableRule>;
export type EventsConfig = z.output<typeof eventsConfig>;
export type WebhookConfig = z.output<typeof webhook>;
export type EventType = z.output<typeof eventTypes>;

/** One size budget shared by every pull-through cache, and how often budgets are checked (docs/proxy.md). */
export const proxyCacheConfig = z
  .strictObject({
    /** All caches together hold at most this; least recently pulled images (of any cache) are evicted beyond it. */
    maxBytes: byteSize.optional(),
    /** How often budgets are checked (also soon after a fill); 0 checks only after fills. */
    evictionInterval: duration.prefault('1m'),
  })
  .prefault({});

export type ProxyCacheConfig = z.output<typeof proxyCacheConfig>;
