import { cloudEvent } from '../events/cloudevents.ts';
import type { EventRecorder } from '../events/recorder.ts';
import type { CompletedRequest, ObservedRequest, RequestObserver } from '../http/observer.ts';
import type { RegistryMetrics } from '../metrics/metrics.ts';
import { tryParseDigest } from '../oci/digest.ts';
import { isRepositoryName, isTag, type Tag } from '../oci/names.ts';
import type { PullRecorder } from '../policy/pull-recorder.ts';

/** Request counts, latencies, bytes and upload outcomes. */
export function metricsObserver(metrics: RegistryMetrics): RequestObserver {
  return {
    afterResponse(request: CompletedRequest) {
      const { endpoint, method, status } = request;
      metrics.requests.inc({ endpoint, method, status: String(status) });
      metrics.duration.observe({ endpoint, method }, request.durationSeconds);
      if (request.bytesReceived > 0) metrics.bytesReceived.inc({ endpoint }, request.bytesReceived);
      if (request.bytesSent > 0) metrics.bytesSent.inc({ endpoint }, request.bytesSent);
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
  return {
    async beforeSend(request) {
      if (recorder === undefined || request.repository === undefined || !isRepositoryName(request.repository)) return;
      const { endpoint, method, status, repository } = request;
      const reference = request.params['reference'] ?? '';
      const digest = tryParseDigest(request.responseHeader('docker-content-digest') ?? '');
      if (endpoint === 'manifest' && method === 'PUT' && status === 201 && digest !== undefined) {
        const tags = [...new Set([reference, ...request.query('tag')].filter((value): value is Tag => isTag(value)))];
        const size = Number(request.requestHeader('content-length'));
        await recorder.record(
          cloudEvent(recorder.source, 'io.berth.manifest.pushed', tags[0] === undefined ? `${repository}@${digest}` : `${repository}:${tags[0]}`, {
            repository,
            digest,
            mediaType: mediaType(request.requestHeader('content-type')),
            ...(Number.isFinite(size) && size > 0 ? { size } : {}),
            tags,
          }),
          repository,
        );
      } else if (method === 'DELETE' && status === 202 && endpoint === 'manifest') {
        const byDigest = tryParseDigest(reference);
        await recorder.record(
          byDigest === undefined
            ? cloudEvent(recorder.source, 'io.berth.tag.deleted', `${repository}:${reference}`, { repository, tag: reference, reason: 'api' })
            : cloudEvent(recorder.source, 'io.berth.manifest.deleted', `${repository}@${byDigest}`, { repository, digest: byDigest, reason: 'api' }),
          repository,
        );
      } else if (method === 'DELETE' && status === 202 && endpoint === 'blob') {
        const blob = tryParseDigest(request.params['digest'] ?? '');
        if (blob !== undefined) {
          await recorder.record(cloudEvent(recorder.source, 'io.berth.blob.deleted', `${repository}@${blob}`, { repository, digest: blob, reason: 'api' }), repository);
        }
      }
    },
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
}

function mediaType(header: string | undefined): string | undefined {
  return header?.split(';')[0]?.trim() || undefined;
}
