import { byteSize, duration } from './units.ts';
import * as z from './zod.ts';

/**
 * Operations keys (docs/operations.md): garbage collection, retention,
 * quotas, immutable tags, events and metrics.
 */

/** A repository name glob: `*` stays within one path component, `**` crosses them, `?` is one character. */
const repositoryGlob = z.string().check(z.minLength(1), z.regex(/^[a-z0-9._\-/*?]+$/, 'expected a repository name glob such as "team/*" or "prod/**"'));

/** A tag glob: `*` is any run of characters, `?` one. */
const tagGlob = z.string().check(z.minLength(1), z.regex(/^[A-Za-z0-9._\-*?]+$/, 'expected a tag glob such as "v*" or "latest"'));

const repositoryGlobs = z.array(repositoryGlob).check(z.minLength(1));

export const gcConfig = z.prefault(
  z.strictObject({
    /** How often `berth serve` runs a pass (one replica at a time); 0 turns periodic collection off. */
    interval: z.prefault(duration, '1h'),
    /** Blobs, links and manifests younger than this are never collected: an in-flight push may still need them. */
    gracePeriod: z.prefault(duration, '24h'),
    /** Remove links of layers that no manifest of their repository references (after the grace period). */
    unreferencedLinks: z._default(z.boolean(), true),
    /** Delete manifests that no tag, index or subject makes reachable (after the grace period). */
    untaggedManifests: z._default(z.boolean(), false),
    /** List the blob store for bytes that have no metadata (a crash between write and link). */
    orphans: z._default(z.boolean(), true),
    /** Upload sessions untouched this long are removed, with their bytes (and S3 multipart uploads). */
    uploadExpiry: z.prefault(duration, '24h'),
    /** Rows handled per transaction. */
    batchSize: z._default(z.int().check(z.minimum(1), z.maximum(10_000)), 500),
    /**
     * The share of its time a pass may work, between 0 and 1: after each
     * batch it rests so that pushes and pulls keep the machine. 1 runs a pass
     * flat out (berth gc --duty 1 for an offline clean-up).
     */
    duty: z._default(z.number().check(z.gt(0), z.maximum(1)), 0.25),
  }),
  {},
);

const retentionPolicy = z.strictObject({
  repositories: repositoryGlobs,
  /** Keep the N most recently pushed tags. */
  keepLatest: z.optional(z.int().check(z.minimum(0))),
  /** Always keep tags matching these globs. */
  keepTags: z._default(z.array(tagGlob), []),
  /** Keep tags (and manifests) pulled within this long. */
  keepPulledWithin: z.optional(duration),
  /** Delete manifests without a tag that are older than this (and not reachable from a kept one). */
  untaggedOlderThan: z.optional(duration),
});

export const retentionConfig = z.prefault(
  z.strictObject({
    /** How often `berth serve` applies the policies (one replica at a time); 0 leaves it to `berth retention`. */
    interval: z.prefault(duration, '0'),
    /** Log what would be deleted instead of deleting it. */
    dryRun: z._default(z.boolean(), false),
    /** The first policy whose `repositories` match a name applies to it. */
    policies: z._default(z.array(retentionPolicy), []),
  }),
  {},
);

const quota = z
  .strictObject({
    /** Named in refusals and in usage reports; default: the globs. */
    name: z.optional(z.string().check(z.minLength(1), z.maxLength(100))),
    repositories: repositoryGlobs,
    /** Bytes of distinct blobs and manifests held by all matching repositories together. */
    maxBytes: z.optional(byteSize),
    /** How many matching repositories may hold content. */
    maxRepositories: z.optional(z.int().check(z.minimum(0))),
  })
  .check(z.refine((value) => value.maxBytes !== undefined || value.maxRepositories !== undefined, { message: 'set maxBytes, maxRepositories or both' }));

const immutableRule = z.strictObject({
  repositories: repositoryGlobs,
  /** Tags matching these globs never move nor get deleted once pushed. */
  tags: z.array(tagGlob).check(z.minLength(1)),
});

const eventTypes = z.enum(['push', 'pull', 'delete', 'gc']);

const webhook = z.strictObject({
  /** Names the webhook in logs, metrics and the queue; keep it stable across restarts. */
  name: z.string().check(z.regex(/^[a-zA-Z0-9_.-]{1,64}$/, 'expected a name of letters, digits, ".", "_" or "-"')),
  url: z.url({ protocol: /^https?$/ }),
  /** Extra request headers (an Authorization header, say). */
  headers: z._default(z.record(z.string(), z.string()), {}),
  types: z._default(z.array(eventTypes).check(z.minLength(1)), ['push', 'pull', 'delete', 'gc']),
  /** Only events of matching repositories (GC events have none and always pass). */
  repositories: z._default(z.array(repositoryGlob), ['**']),
  timeout: z.prefault(duration, '10s'),
  /** Events per request: 1 sends structured mode, more sends batched mode (a JSON array). */
  batchSize: z._default(z.int().check(z.minimum(1), z.maximum(1000)), 1),
});

export const eventsConfig = z.prefault(
  z
    .strictObject({
      /** The CloudEvents `source` attribute. */
      source: z._default(z.string().check(z.minLength(1)), '/berth'),
      webhooks: z._default(z.array(webhook), []),
      retry: z.prefault(
        z.strictObject({
          initialDelay: z.prefault(duration, '1s'),
          maxDelay: z.prefault(duration, '5m'),
          /** An event still undelivered this long after it happened is given up (logged and counted). */
          maxAge: z.prefault(duration, '72h'),
        }),
        {},
      ),
    })
    .check(
      z.superRefine((value, context) => {
        const seen = new Set<string>();
        value.webhooks.forEach((hook, index) => {
          if (seen.has(hook.name)) context.addIssue({ code: 'custom', path: ['webhooks', index, 'name'], message: `duplicate webhook name "${hook.name}"` });
          seen.add(hook.name);
        });
      }),
    ),
  {},
);

export const metricsConfig = z.prefault(
  z.strictObject({
    /** Serve Prometheus metrics at /metrics. */
    enabled: z._default(z.boolean(), true),
  }),
  {},
);

export const quotasConfig = z._default(z.array(quota), []);
export const immutableTagsConfig = z._default(z.array(immutableRule), []);

export type GcConfig = z.output<typeof gcConfig>;
export type RetentionConfig = z.output<typeof retentionConfig>;
export type RetentionPolicyConfig = z.output<typeof retentionPolicy>;
export type QuotaConfig = z.output<typeof quota>;
export type ImmutableTagRule = z.output<typeof immutableRule>;
export type EventsConfig = z.output<typeof eventsConfig>;
export type WebhookConfig = z.output<typeof webhook>;
export type EventType = z.output<typeof eventTypes>;

/** One size budget shared by every pull-through cache, and how often budgets are checked (docs/proxy.md). */
export const proxyCacheConfig = z.prefault(
  z.strictObject({
    /** All caches together hold at most this; least recently pulled images (of any cache) are evicted beyond it. */
    maxBytes: z.optional(byteSize),
    /** How often budgets are checked (also soon after a fill); 0 checks only after fills. */
    evictionInterval: z.prefault(duration, '1m'),
  }),
  {},
);

export type ProxyCacheConfig = z.output<typeof proxyCacheConfig>;
