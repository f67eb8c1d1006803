import { AggregatorRegistry, collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheCounter } from '../registry/cache-metrics.ts';
import { ProxyMetrics } from './proxy-metrics.ts';

/** One worker's metrics as values (prom-client's JSON form). */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** What the metrics read from elsewhere when scraped. */
export interface MetricSources {
  /** Upload sessions open now. */
  openUploads?: () => Promise<number>;
  /** Events waiting per webhook. */
  eventBacklog?: () => Promise<Map<string, number>>;
}

/**
 * Berth's Prometheus metrics, on a registry of their own (not prom-client's
 * global one), so that several registries can live in one process (tests).
 * Labels are bounded: endpoint kinds, methods, status codes, webhook names
 * and repository kinds — never repository names or digests.
 */
export class RegistryMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'endpoint' | 'method' | 'status'>;
  readonly duration: Histogram<'endpoint' | 'method'>;
  readonly bytesReceived: Counter<'endpoint'>;
  readonly bytesSent: Counter<'endpoint'>;
  readonly uploads: Counter<'outcome'>;
  readonly gcRuns: Counter<'result'>;
  readonly gcDuration: Histogram;
  readonly gcBytesFreed: Counter;
  readonly gcDeleted: Counter<'kind'>;
  readonly gcLastSuccess: Gauge;
  readonly retentionDeleted: Counter<'kind'>;
  readonly cache: Counter<'kind' | 'cache' | 'result'>;
  readonly events: Counter<'webhook' | 'outcome'>;
  /** Pull-through caches: upstream requests, rate limits, stale serves, budgets (docs/proxy.md). */
  readonly proxy: ProxyMetrics;
  readonly dependencyUp: Gauge<'dependency'>;
  readonly dependencyOutages: Counter<'dependency'>;
  readonly storageFull: Counter<'store'>;

  constructor(sources: MetricSources = {}) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.storageFull = new Counter({
      name: 'berth_storage_full_total',
      help: 'Requests refused because a store was full (ENOSPC, EDQUOT, SQLITE_FULL, PostgreSQL disk_full), by store: blobs or metadata.',
      labelNames: ['store'],
      registers,
    });
    this.requests = new Counter({
      name: 'berth_http_requests_total',
      help: 'HTTP requests answered, by endpoint kind, method and status code.',
      labelNames: ['endpoint', 'method', 'status'],
      registers,
    });
    this.duration = new Histogram({
      name: 'berth_http_request_duration_seconds',
      help: 'Time from a request arriving to its response being sent, by endpoint kind and method.',
      labelNames: ['endpoint', 'method'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.bytesReceived = new Counter({
      name: 'berth_http_received_bytes_total',
      help: 'Request bytes received (as read from the connection: headers, body, chunk framing), by endpoint kind.',
      labelNames: ['endpoint'],
      registers,
    });
    this.bytesSent = new Counter({
      name: 'berth_http_sent_bytes_total',
      help: 'Response bytes sent (headers included), by endpoint kind.',
      labelNames: ['endpoint'],
      registers,
    });
    this.uploads = new Counter({
      name: 'berth_upload_sessions_total',
      help: 'Blob upload sessions by outcome: started, completed, cancelled, expired.',
      labelNames: ['outcome'],
      registers,
    });
    const openUploads = sources.openUploads;
    new Gauge({
      name: 'berth_upload_sessions_open',
      help: 'Upload sessions open now (all replicas).',
      // Every worker reads the same database: one reading, not their sum.
      aggregator: 'max',
      registers,
      ...(openUploads === undefined
        ? {}
        : {
            async collect() {
              this.set(await openUploads());
            },
          }),
    });
    this.gcRuns = new Counter({
      name: 'berth_gc_runs_total',
      help: 'Garbage collection passes, by result: ok, failed, skipped (another replica was collecting).',
      labelNames: ['result'],
      registers,
    });
    this.gcDuration = new Histogram({
      name: 'berth_gc_duration_seconds',
      help: 'Duration of garbage collection passes.',
      buckets: [0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600],
      registers,
    });
    this.gcBytesFreed = new Counter({ name: 'berth_gc_freed_bytes_total', help: 'Bytes deleted from the blob store by garbage collection.', registers });
    this.gcDeleted = new Counter({
      name: 'berth_gc_deleted_total',
      help: 'What garbage collection removed, by kind: blob, orphan, link, manifest, upload.',
      labelNames: ['kind'],
      registers,
    });
    this.gcLastSuccess = new Gauge({
      name: 'berth_gc_last_success_timestamp_seconds',
      help: 'When the last successful pass of this replica finished.',
      aggregator: 'max',
      registers,
    });
    this.retentionDeleted = new Counter({
      name: 'berth_retention_deleted_total',
      help: 'Tags and manifests deleted by retention policies, by kind: tag, manifest.',
      labelNames: ['kind'],
      registers,
    });
    this.cache = new Counter({
      name: 'berth_cache_requests_total',
      help: 'Cache lookups of repository kinds (proxy, archive), by kind, cache and result (hit or miss).',
      labelNames: ['kind', 'cache', 'result'],
      registers,
    });
    this.dependencyUp = new Gauge({
      name: 'berth_dependency_up',
      help: 'Whether the last readiness check reached the dependency (metadata, blobs): 1 or 0.',
      labelNames: ['dependency'],
      // Down when any worker finds it down.
      aggregator: 'min',
      registers,
    });
    this.dependencyOutages = new Counter({
      name: 'berth_dependency_outages_total',
      help: 'Times a readiness check found the dependency (metadata, blobs) unreachable after it was reachable.',
      labelNames: ['dependency'],
      // Every worker checks on its own and sees the same outage.
      aggregator: 'max',
      registers,
    });
    this.events = new Counter({
      name: 'berth_events_total',
      help: 'Webhook events by webhook and outcome: queued, delivered, retried (a failed attempt), dropped (given up), lost (could not be queued).',
      labelNames: ['webhook', 'outcome'],
      registers,
    });
    this.proxy = new ProxyMetrics(this.registry);
    const eventBacklog = sources.eventBacklog;
    new Gauge({
      name: 'berth_events_backlog',
      help: 'Events waiting for delivery, by webhook (all replicas).',
      labelNames: ['webhook'],
      aggregator: 'max',
      registers,
      ...(eventBacklog === undefined
        ? {}
        : {
            async collect() {
              this.reset();
              for (const [webhook, count] of await eventBacklog()) this.set({ webhook }, count);
            },
          }),
    });
  }

  /** A counter for one cache of one repository kind, to hand to that kind. */
  cacheCounter(kind: string, cache: string): CacheCounter {
    const hit = this.cache.labels(kind, cache, 'hit');
    const miss = this.cache.labels(kind, cache, 'miss');
    hit.inc(0);
    miss.inc(0);
    return { hit: () => hit.inc(), miss: () => miss.inc() };
  }

  /** The exposition text, and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** This worker's metrics as values, for the worker that adds up all of them. */
  values(): Promise<WorkerMetrics> {
    return this.registry.getMetricsAsJSON();
  }

  /**
   * The exposition of several workers' metrics: counters and histograms
   * added up, gauges as each declares (`aggregator`), and the `process_…`
   * metrics, which describe the whole process the workers share, from the
   * first list (the leader's).
   */
  static async combined(perWorker: WorkerMetrics[]): Promise<{ contentType: string; body: string }> {
    const lists = perWorker.map((metrics) => metrics.map((metric) => (metric.name.startsWith('process_') ? { ...metric, aggregator: 'first' as const } : metric)));
    const registry = AggregatorRegistry.aggregate(lists);
    return { contentType: registry.contentType, body: await registry.metrics() };
  }
}
