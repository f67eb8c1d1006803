import type { CompletedRequest, ObservedRequest, RequestObserver } from '../http/observer.ts';
import type { RegistryMetrics } from '../metrics/metrics.ts';

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
