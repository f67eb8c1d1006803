import { cloudEvent } from '../events/cloudevents.ts';
import type { EventRecorder } from '../events/recorder.ts';
import type { CompletedRequest, ObservedRequest, RequestObserver } from '../http/observer.ts';
import type { RegistryMetrics } from '../metrics/metrics.ts';
import { tryParseDigest } from '../oci/digest.ts';
import { isRepositoryName, isTag, type Tag } from '../oci/names.ts';
import type { PullRecorder } from '../policy/pull-recorder.ts';

/** Request counts, latencies, bytes and upload outcomes. */
export function metricsObserver(metrics: RegistryMetrics): RequestObserver {
  // Children per label set, looked up by one string: prom-client would hash the labels on every call.
  type Count = { inc(value?: number): void };
  const counted = new Map<string, { requests: Count; duration: { observe(value: number): void }; received: Count; sent: Count }>();
  const series = (endpoint: string, method: string, status: number) => {
    const key = `${endpoint} ${method} ${status}`;
    let found = counted.get(key);
    if (found === undefined) {
      found = {
        requests: metrics.requests.labels(endpoint, method, String(status)),
        duration: metrics.duration.labels(endpoint, method),
        received: metrics.bytesReceived.labels(endpoint),
        sent: metrics.bytesSent.labels(endpoint),
      };
      counted.set(key, found);
    }
    return found;
  };
  return {
    afterResponse(request: CompletedRequest) {
      const { endpoint, method, status } = request;
      const { requests, duration, received, sent } = series(endpoint, method, status);
      requests.inc();
      duration.observe(request.durationSeconds);
      if (request.bytesReceived > 0) received.inc(request.bytesReceived);
      if (request.bytesSent > 0) sent.inc(request.bytesSent);
      const outcome = uploadOutcome(request);
      if (outcome !== undefined) for (const each of outcome) metrics.uploads.inc({ outcome: each });
    },
  };
}

function uploadOutcome(request: ObservedRequest): string[] | undefined {
  const { endpoint, method, status } = request;
  if (endpoint === 'blob_upload_start' && method === 'POST') {
    if (status === 202) return ['started'];
    if (status === 201 && request.query('digest').length > 0) return ['started', 'completed'];
  }
  if (endpoint === 'blob_upload' && method === 'PUT' && status === 201) return ['completed'];
  if (endpoint === 'blob_upload' && method === 'DELETE' && status === 204) return ['cancelled'];
  return undefined;
}

/**
 * CloudEvents for pushes and deletes (queued before the client gets its
 * answer, so an acknowledged push always has its event) and for pulls
 * (manifest GETs, gathered and queued just after), and pull times for
 * retention.
 */
export function eventsObserver(recorder: EventRecorder | undefined, pulls: PullRecorder | undefined): RequestObserver {
  const observer: RequestObserver = {
    afterResponse(request) {
      const { endpoint, method, status, repository } = request;
      if (endpoint !== 'manifest' || method !== 'GET' || status !== 200 || repository === undefined || !isRepositoryName(repository)) return;
      const digest = tryParseDigest(request.responseHeader('docker-content-digest') ?? '');
      if (digest === undefined) return;
      pulls?.pulled(repository, digest);
      if (recorder === undefined) return;
      const reference = request.params['reference'] ?? '';
      const size = Number(request.responseHeader('content-length'));
      recorder.recordSoon(
        cloudEvent(recorder.source, 'io.berth.manifest.pulled', isTag(reference) ? `${repository}:${reference}` : `${repository}@${digest}`, {
          repository,
          digest,
          mediaType: mediaType(request.responseHeader('content-type')),
          ...(Number.isFinite(size) ? { size } : {}),
          reference,
        }),
        repository,
      );
    },
  };
  // Only with webhooks: a hook before every response costs even when it does nothing.
  if (recorder !== undefined) observer.beforeSend = (request) => recordChange(recorder, request);
  return observer;
}

/** Push and delete events, queued before the client hears of the change. */
async function recordChange(recorder: EventRecorder, request: ObservedRequest): Promise<void> {
  const { endpoint, method, status, repository } = request;
  if (repository === undefined || !isRepositoryName(repository)) return;
  const reference = request.params['reference'] ?? '';
  const digest = tryParseDigest(request.responseHeader('docker-content-digest') ?? '');
  if (endpoint === 'manifest' && method === 'PUT' && status === 201 && digest !== undefined) {
    const tags = [...new Set([reference, ...request.query('tag')].filter((value): value is Tag => isTag(value)))];
    const size = Number(request.requestHeader('content-length'));
    const subject = tags[0] === undefined ? `${repository}@${digest}` : `${repository}:${tags[0]}`;
    const data = { repository, digest, mediaType: mediaType(request.requestHeader('content-type')), ...(Number.isFinite(size) && size > 0 ? { size } : {}), tags };
    await recorder.record(cloudEvent(recorder.source, 'io.berth.manifest.pushed', subject, data), repository);
  } else if (endpoint === 'manifest' && method === 'DELETE' && status === 202) {
    const byDigest = tryParseDigest(reference);
    const event =
      byDigest === undefined
        ? cloudEvent(recorder.source, 'io.berth.tag.deleted', `${repository}:${reference}`, { repository, tag: reference, reason: 'api' })
        : cloudEvent(recorder.source, 'io.berth.manifest.deleted', `${repository}@${byDigest}`, { repository, digest: byDigest, reason: 'api' });
    await recorder.record(event, repository);
  } else if (endpoint === 'blob' && method === 'DELETE' && status === 202) {
    const blob = tryParseDigest(request.params['digest'] ?? '');
    if (blob === undefined) return;
    await recorder.record(cloudEvent(recorder.source, 'io.berth.blob.deleted', `${repository}@${blob}`, { repository, digest: blob, reason: 'api' }), repository);
  }
}

function mediaType(header: string | undefined): string | undefined {
  return header?.split(';')[0]?.trim() || undefined;
}
