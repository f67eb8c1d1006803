import type { FastifyInstance } from 'fastify';
import type { BlobStore } from '../blobs/blob-store.ts';
import type { Config } from '../config/schema.ts';
import { cloudEvent } from '../events/cloudevents.ts';
import { WebhookDispatcher } from '../events/dispatcher.ts';
import { ChangeEvents } from '../events/change-events.ts';
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
import type { ChangeLog } from '../meta/change-log.ts';
import { alone, type Peers } from '../io/peers.ts';
import type { RepositorySource } from '../registry/repository.ts';
import type { WritePolicy } from '../registry/write-policy.ts';
import { metricsObserver } from './observers.ts';
import { recordingPulls } from './pull-records.ts';
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
  /** The other workers of this `berth serve`; the leader delivers events and runs the schedules. */
  peers?: Peers;
}

/**
 * Operations around the registry (docs/operations.md), built once per process:
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
  /** What the hosted write path commits with its changes: their events. */
  readonly changes: ChangeLog | undefined;
  readonly pulls: PullRecorder | undefined;
  /** The last garbage collection pass this process ran (the web UI shows it). */
  lastGc: { report: GcReport; finishedAt: Date; seconds: number } | undefined;
  readonly #parts: OperationsParts;
  readonly #peers: Peers;
  readonly #dispatcher: WebhookDispatcher | undefined;
  readonly #schedules: Schedules;
  readonly #tasks: { name: string; interval: number; task: (signal: AbortSignal) => Promise<void> }[] = [];
  #cacheUsage: (() => Promise<NonNullable<UsageReport['caches']>>) | undefined;
  #retained: () => AsyncIterable<Digest> = async function* () {};

  constructor(parts: OperationsParts) {
    const { config, meta, store, logger } = parts;
    this.#parts = parts;
    this.store = store;
    this.metrics = new RegistryMetrics({
      openUploads: () => meta.uploads.count(),
      eventBacklog: async () => {
        const backlog = await store.events.backlog();
        for (const [webhook, events] of this.events?.handedBacklog() ?? []) backlog.set(webhook, (backlog.get(webhook) ?? 0) + events);
        return backlog;
      },
    });
    this.guard = new BlobGuard(store.blobs, store.leases, parts.blobs);
    this.blobs = this.guard.wrap(parts.blobs);
    this.quotas = new Quotas(config.quotas, store.usage);
    this.immutableTags = new ImmutableTags(config.immutableTags, meta);
    this.policy = operationsPolicy({ quotas: this.quotas, immutableTags: this.immutableTags, guard: this.guard, meta });
    const events = config.events.webhooks.length === 0 ? undefined : config.events;
    this.events =
      events === undefined ? undefined : new EventRecorder(events, store.events, logger, (webhook, outcome, count) => this.metrics.events.inc({ webhook, outcome }, count));
    this.#dispatcher =
      events === undefined
        ? undefined
        : new WebhookDispatcher(events, store.events, store.leases, logger, (webhook, outcome, count) => this.metrics.events.inc({ webhook, outcome }, count), this.events);
    this.#peers = parts.peers ?? alone();
    if (this.#dispatcher !== undefined) this.events?.onQueued(this.#wakeDispatcher());
    this.#peers.answer('metrics', () => this.metrics.values());
    this.changes = this.events === undefined ? undefined : new ChangeEvents(this.events);
    this.retention = new Retention(config.retention.policies, {
      operations: store,
      immutable: (repository, tag) => this.immutableTags.ruleFor(repository, tag) !== undefined,
      logger,
      ...(this.changes === undefined ? {} : { changes: this.changes }),
      onTagDeleted: () => this.metrics.retentionDeleted.inc({ kind: 'tag' }),
      onManifestDeleted: () => this.metrics.retentionDeleted.inc({ kind: 'manifest' }),
    });
    // The web UI shows when each tag was last pulled; caches with a size budget evict the least recently pulled images.
    const budgets = config.proxyCache.maxBytes !== undefined || config.repositories.some((entry) => entry.kind === 'proxy' && entry.maxBytes !== undefined);
    this.pulls = this.retention.usesPulls || config.ui.enabled || budgets ? new PullRecorder(store.pulls, logger) : undefined;
    this.#schedules = new Schedules(logger);
  }

  /**
   * What an event queued here does: wakes the dispatcher, which runs on the
   * leader; another worker tells the leader, at most once per turn.
   */
  #wakeDispatcher(): () => void {
    const queued = this.#peers.channel<null>('events-queued');
    if (this.#peers.leader) {
      queued.onMessage(() => this.#dispatcher?.wake());
      return () => this.#dispatcher?.wake();
    }
    let told = false;
    return () => {
      if (told) return;
      told = true;
      setImmediate(() => {
        told = false;
        queued.post(null);
      });
    };
  }

  /** Where the blobs other kinds keep without links come from (the router, once built). */
  retainFrom(retained: () => AsyncIterable<Digest>): void {
    this.#retained = retained;
  }

  /** One garbage collection pass; undefined when another replica is collecting. */
  async collect(options: { dryRun?: boolean; signal?: AbortSignal; afterCondemn?: GcReportHook; clock?: () => number } = {}): Promise<GcReport | undefined> {
    const { config, meta, store, logger, blobs } = this.#parts;
    const collector = new GarbageCollector(config.gc, {
      blobs,
      meta,
      operations: store,
      retained: () => this.#retained(),
      logger,
      ...(this.#parts.sweepMultipart === undefined ? {} : { sweepMultipart: this.#parts.sweepMultipart }),
      ...(options.afterCondemn === undefined ? {} : { afterCondemn: options.afterCondemn }),
      ...(this.changes === undefined ? {} : { changes: this.changes }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
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

  /** Quotas, caches and the globs' usage; with `visible` (the caller's view), counting only the repositories it accepts. */
  async usage(globs: readonly string[], visible?: (name: RepositoryName) => boolean): Promise<UsageReport> {
    const quotas = await this.quotas.report(visible);
    const caches = this.#cacheUsage === undefined ? {} : { caches: await this.#cacheUsage() };
    if (globs.length === 0) return { quotas, ...caches };
    const selection = await visibleUsage(this.store.usage, repositoryScope(globs), visible);
    return { quotas, selection: { repositories: globs, usedBytes: selection.bytes, usedRepositories: selection.repositories }, ...caches };
  }

  /** Where `/berth/usage` finds the pull-through caches' budgets. */
  reportCacheUsage(usage: () => Promise<NonNullable<UsageReport['caches']>>): void {
    this.#cacheUsage = usage;
  }

  /** Periodic work of another part (cache budgets, pre-warming), started with the rest by `start`. */
  every(name: string, interval: number, task: (signal: AbortSignal) => Promise<void>): void {
    this.#tasks.push({ name, interval, task });
  }

  /** Observers of HTTP traffic: request metrics. (Events and pulls come from the repositories, see `changes` and `recordPulls`.) */
  observers(): RequestObserver[] {
    return [metricsObserver(this.metrics)];
  }

  /** The source, its repositories' pulls recorded (pull events, pull times for retention); itself when nothing listens. */
  recordPulls(source: RepositorySource): RepositorySource {
    const { events, pulls } = this;
    if ((events === undefined || !events.wants('pull')) && pulls === undefined) return source;
    return recordingPulls(source, { ...(events === undefined ? {} : { events }), ...(pulls === undefined ? {} : { pulls }) });
  }

  extensions(): ((app: FastifyInstance, access?: AccessPolicy) => void)[] {
    const routes: ((app: FastifyInstance, access?: AccessPolicy) => void)[] = [usageRoute((globs, visible) => this.usage(globs, visible))];
    if (this.#parts.config.metrics.enabled) {
      const peers = this.#peers;
      routes.push(metricsRoute(async () => (peers.count === 1 ? this.metrics.exposition() : RegistryMetrics.combined(await peers.gather('metrics')))));
    }
    return routes;
  }

  /**
   * Starts webhook delivery and the periodic work `berth serve` does.
   * `passes` runs the scheduled passes elsewhere (threads of their own, on
   * the embedded store); by default they run here.
   */
  start(passes?: ScheduledPasses): void {
    const { config } = this.#parts;
    this.#dispatcher?.start();
    this.#schedules.every('gc', config.gc.interval, async (signal) => {
      if (passes === undefined) {
        await this.collect({ signal });
        return;
      }
      const started = performance.now();
      try {
        const report = await passes.collect(signal);
        if (report === undefined) this.metrics.gcRuns.inc({ result: 'skipped' });
        // The pass recorded its own event where it ran: count it here, where metrics are served.
        else this.#countPass(report, (performance.now() - started) / 1000);
      } catch (error) {
        this.metrics.gcRuns.inc({ result: 'failed' });
        throw error;
      }
    });
    if (this.retention.configured) {
      this.#schedules.every('retention', config.retention.interval, async (signal) => {
        const { dryRun } = config.retention;
        if (passes === undefined) {
          await this.applyRetention({ dryRun });
          return;
        }
        const report = await passes.retention(dryRun, signal);
        if (report === undefined || report.dryRun) return;
        this.metrics.retentionDeleted.inc({ kind: 'tag' }, report.tags.length);
        this.metrics.retentionDeleted.inc({ kind: 'manifest' }, report.manifests.length);
      });
    }
    // Replicas each know their own retained blobs (archive caches are per replica): touching them
    // well within the grace period keeps whichever replica collects from deleting them.
    const publish = Math.max(60_000, Math.min(config.gc.gracePeriod / 4, 3_600_000));
    this.#schedules.every('retained blobs', publish, () => this.#touchRetained(), { runAtStart: true });
    for (const { name, interval, task } of this.#tasks) this.#schedules.every(name, interval, task);
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

  /** When the next scheduled garbage collection pass starts; undefined when none is scheduled. */
  nextGc(): Date | undefined {
    return this.#schedules.nextRun('gc');
  }

  #recordPass(report: GcReport, seconds: number): void {
    this.#countPass(report, seconds);
    const { startedAt, cutoff, ...summary } = report;
    void this.events?.record(cloudEvent(this.events.source, 'io.berth.gc.completed', undefined, { ...summary, startedAt: startedAt.toISOString(), cutoff: cutoff.toISOString() }));
  }

  #countPass(report: GcReport, seconds: number): void {
    this.lastGc = { report, finishedAt: new Date(), seconds };
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
  }
}

/** Scheduled passes run somewhere other than this thread. */
export interface ScheduledPasses {
  collect(signal: AbortSignal): Promise<GcReport | undefined>;
  retention(dryRun: boolean, signal: AbortSignal): Promise<RetentionReport | undefined>;
}

type GcReportHook = NonNullable<ConstructorParameters<typeof GarbageCollector>[1]['afterCondemn']>;
