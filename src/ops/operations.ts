import type { FastifyInstance } from 'fastify';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { Config } from '../config/schema.ts';
import { cloudEvent } from '../events/cloudevents.ts';
import { WebhookDispatcher } from '../events/dispatcher.ts';
import { EventRecorder } from '../events/recorder.ts';
import { BlobGuard } from '../gc/blob-guard.ts';
import { GarbageCollector, type GcReport } from '../gc/collector.ts';
import type { AccessPolicy } from '../http/access.ts';
import type { RequestObserver } from '../http/observer.ts';
import { metricsRoute, usageRoute, type UsageReport } from '../http/operations-routes.ts';
import type { Logger } from '../log.ts';
import type { MetaStore } from '../meta/meta-store.ts';
import type { OperationsStore } from '../meta/operations-store.ts';
import { RegistryMetrics } from '../metrics/metrics.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName } from '../oci/names.ts';
import { repositoryScope } from '../policy/globs.ts';
import { ImmutableTags } from '../policy/immutable-tags.ts';
import { PullRecorder } from '../policy/pull-recorder.ts';
import { Quotas, visibleUsage } from '../policy/quotas.ts';
import { Retention, type RetentionReport } from '../policy/retention.ts';
import { operationsPolicy } from '../policy/write-policy.ts';
import type { WritePolicy } from '../registry/write-policy.ts';
import { eventsObserver, metricsObserver } from './observers.ts';
import { Schedules } from './schedules.ts';

export interface OperationsParts {
  config: Config;
  /** The blob store as the driver gives it (the collector deletes from it directly). */
  blobs: BlobStore;
  meta: MetaStore;
  store: OperationsStore;
  logger: Logger;
  /** Aborts the blob store's multipart uploads started before a cutoff (S3). */
  sweepMultipart?: (cutoff: Date) => Promise<number>;
}

/**
 * Everything issue 9 adds around the registry, built once per process:
 * the guarded blob store and write policy the hosted kind uses, garbage
 * collection, retention, quotas, events and metrics, and the schedules
 * `berth serve` runs. The CLI uses the same object for one-off passes.
 */
export class Operations {
  readonly store: OperationsStore;
  readonly metrics: RegistryMetrics;
  readonly guard: BlobGuard;
  /** What every writer should use: commits keep garbage collection off the digest. */
  readonly blobs: BlobStore;
  readonly policy: WritePolicy;
  readonly quotas: Quotas;
  readonly immutableTags: ImmutableTags;
  readonly retention: Retention;
  readonly events: EventRecorder | undefined;
  readonly pulls: PullRecorder | undefined;
  readonly #parts: OperationsParts;
  readonly #dispatcher: WebhookDispatcher | undefined;
  readonly #schedules: Schedules;
  #retained: () => AsyncIterable<Digest> = async function* () {};

  constructor(parts: OperationsParts) {
    const { config, meta, store, logger } = parts;
    this.#parts = parts;
    this.store = store;
    this.metrics = new RegistryMetrics({
      openUploads: async () => (await meta.uploads.staleSince(new Date(8.64e15))).length,
      eventBacklog: () => store.events.backlog(),
    });
    this.guard = new BlobGuard(store.blobs, store.leases, parts.blobs);
    this.blobs = this.guard.wrap(parts.blobs);
    this.quotas = new Quotas(config.quotas, store.usage);
    this.immutableTags = new ImmutableTags(config.immutableTags, meta);
    this.policy = operationsPolicy({ quotas: this.quotas, immutableTags: this.immutableTags, guard: this.guard, meta });
    const events = config.events.webhooks.length === 0 ? undefined : config.events;
    this.events = events === undefined ? undefined : new EventRecorder(events, store.events, logger, (webhook, outcome) => this.metrics.events.inc({ webhook, outcome }));
    this.#dispatcher =
      events === undefined
        ? undefined
        : new WebhookDispatcher(events, store.events, store.leases, logger, (webhook, outcome) => this.metrics.events.inc({ webhook, outcome }));
    if (this.#dispatcher !== undefined) this.events?.onQueued(() => this.#dispatcher?.wake());
    this.retention = new Retention(config.retention.policies, {
      operations: store,
      immutable: (repository, tag) => this.immutableTags.ruleFor(repository, tag) !== undefined,
      logger,
      onTagDeleted: (repository, tag, digest) => {
        this.metrics.retentionDeleted.inc({ kind: 'tag' });
        void this.#deleted('io.berth.tag.deleted', `${repository}:${tag}`, { repository, tag, digest, reason: 'retention' }, repository);
      },
      onManifestDeleted: (repository, digest) => {
        this.metrics.retentionDeleted.inc({ kind: 'manifest' });
        void this.#deleted('io.berth.manifest.deleted', `${repository}@${digest}`, { repository, digest, reason: 'retention' }, repository);
      },
    });
    this.pulls = this.retention.usesPulls ? new PullRecorder(store.pulls, logger) : undefined;
    this.#schedules = new Schedules(logger);
  }

  /** Where the blobs other kinds keep without links come from (the router, once built). */
  retainFrom(retained: () => AsyncIterable<Digest>): void {
    this.#retained = retained;
  }

  /** One garbage collection pass; undefined when another replica is collecting. */
  async collect(options: { dryRun?: boolean; signal?: AbortSignal; afterCondemn?: GcReportHook } = {}): Promise<GcReport | undefined> {
    const { config, meta, store, logger, blobs } = this.#parts;
    const collector = new GarbageCollector(config.gc, {
      blobs,
      meta,
      operations: store,
      retained: () => this.#retained(),
      logger,
      ...(this.#parts.sweepMultipart === undefined ? {} : { sweepMultipart: this.#parts.sweepMultipart }),
      ...(options.afterCondemn === undefined ? {} : { afterCondemn: options.afterCondemn }),
      onManifestDeleted: ({ repository, digest }) =>
        void this.#deleted('io.berth.manifest.deleted', `${repository}@${digest}`, { repository, digest, reason: 'gc' }, repository),
    });
    const started = performance.now();
    let report: GcReport | undefined;
    try {
      report = await collector.run({ dryRun: options.dryRun === true, ...(options.signal === undefined ? {} : { signal: options.signal }) });
    } catch (error) {
      this.metrics.gcRuns.inc({ result: 'failed' });
      throw error;
    }
    if (report === undefined) {
      this.metrics.gcRuns.inc({ result: 'skipped' });
      return undefined;
    }
    if (!report.dryRun) this.#recordPass(report, (performance.now() - started) / 1000);
    return report;
  }

  async applyRetention(options: { dryRun: boolean }): Promise<RetentionReport | undefined> {
    return this.retention.run(options);
  }

  /** Quotas and the globs' usage; with `visible` (the caller's view), counting only the repositories it accepts. */
  async usage(globs: readonly string[], visible?: (name: RepositoryName) => boolean): Promise<UsageReport> {
    const quotas = await this.quotas.report(visible);
    if (globs.length === 0) return { quotas };
    const selection = await visibleUsage(this.store.usage, repositoryScope(globs), visible);
    return { quotas, selection: { repositories: globs, usedBytes: selection.bytes, usedRepositories: selection.repositories } };
  }

  observers(): RequestObserver[] {
    const observers = [metricsObserver(this.metrics)];
    if (this.events !== undefined || this.pulls !== undefined) observers.push(eventsObserver(this.events, this.pulls));
    return observers;
  }

  extensions(): ((app: FastifyInstance, access?: AccessPolicy) => void)[] {
    const routes: ((app: FastifyInstance, access?: AccessPolicy) => void)[] = [usageRoute((globs, visible) => this.usage(globs, visible))];
    if (this.#parts.config.metrics.enabled) routes.push(metricsRoute(() => this.metrics.exposition()));
    return routes;
  }

  /** Starts webhook delivery and the periodic work `berth serve` does. */
  start(): void {
    const { config } = this.#parts;
    this.#dispatcher?.start();
    this.#schedules.every('gc', config.gc.interval, async (signal) => {
      await this.collect({ signal });
    });
    if (this.retention.configured) {
      this.#schedules.every('retention', config.retention.interval, async () => {
        await this.applyRetention({ dryRun: config.retention.dryRun });
      });
    }
    // Replicas each know their own retained blobs (droplet indexes are per replica): touching them
    // well within the grace period keeps whichever replica collects from deleting them.
    const publish = Math.max(60_000, Math.min(config.gc.gracePeriod / 4, 3_600_000));
    this.#schedules.every('retained blobs', publish, () => this.#touchRetained(), { runAtStart: true });
  }

  /** Stops schedules (a pass in progress is abandoned, safely), delivers nothing more, writes what is buffered. */
  async stop(): Promise<void> {
    await this.#schedules.stop();
    await this.events?.flush();
    await this.pulls?.flush();
    await this.#dispatcher?.stop();
  }

  async close(): Promise<void> {
    await this.store.close?.();
  }

  async #touchRetained(): Promise<void> {
    let batch: Digest[] = [];
    for await (const digest of this.#retained()) {
      batch.push(digest);
      if (batch.length >= 500) {
        await this.store.blobs.touch(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.store.blobs.touch(batch);
  }

  #recordPass(report: GcReport, seconds: number): void {
    const { metrics } = this;
    metrics.gcRuns.inc({ result: 'ok' });
    metrics.gcDuration.observe(seconds);
    metrics.gcBytesFreed.inc(report.bytesFreed);
    metrics.gcDeleted.inc({ kind: 'blob' }, report.blobsDeleted + report.tombstonesFinished);
    metrics.gcDeleted.inc({ kind: 'orphan' }, report.orphansDeleted);
    metrics.gcDeleted.inc({ kind: 'link' }, report.linksRemoved);
    metrics.gcDeleted.inc({ kind: 'manifest' }, report.manifestsDeleted);
    metrics.gcDeleted.inc({ kind: 'upload' }, report.uploads.sessions + report.uploads.leftovers);
    metrics.uploads.inc({ outcome: 'expired' }, report.uploads.sessions);
    metrics.gcLastSuccess.set(Date.now() / 1000);
    const { startedAt, cutoff, ...summary } = report;
    void this.events?.record(cloudEvent(this.events.source, 'io.berth.gc.completed', undefined, { ...summary, startedAt: startedAt.toISOString(), cutoff: cutoff.toISOString() }));
  }

  #deleted(type: 'io.berth.tag.deleted' | 'io.berth.manifest.deleted', subject: string, data: Record<string, unknown>, repository: RepositoryName): Promise<void> {
    return this.events?.record(cloudEvent(this.events.source, type, subject, data), repository) ?? Promise.resolve();
  }
}

type GcReportHook = NonNullable<ConstructorParameters<typeof GarbageCollector>[1]['afterCondemn']>;
