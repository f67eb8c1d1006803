import type { PeerChannel } from '../io/peers.ts';
import type { RateLimitSettings, Spending } from '../io/rate-limiter.ts';

/** How the HTTP server itself guards against large and slow clients, and whether it speaks TLS. */
export interface ServerSettings {
  /** PEM certificate chain and key: the server speaks HTTPS. */
  https?: { cert: string | Buffer; key: string | Buffer };
  /** Request line plus headers, at most (431 beyond). */
  maxHeaderBytes?: number;
  /** Time to receive a request's headers (408 beyond): slow-loris clients are cut off. */
  headersTimeout?: number;
  /** A socket with no traffic for this long is closed; 0 never. */
  idleTimeout?: number;
  /** Idle keep-alive connections are closed after this long. */
  keepAliveTimeout?: number;
  /** A whole request, at most; 0 no limit. */
  requestTimeout?: number;
  /** Trust X-Forwarded-* from these proxies (or all, when true). */
  trustProxy?: boolean | string[];
  rateLimit?: RateLimitSettings;
  /** With several workers: what the rate limit tells the others (every worker counts every request). */
  rateLimitShare?: PeerChannel<Spending>;
}

/**
 * Fastify's factory options for the settings. Node checks header timeouts
 * on a timer; it runs often enough here that a slow client is cut off near
 * `headersTimeout`, not up to half a minute later.
 */
export function serverOptions(settings: ServerSettings | undefined): Record<string, unknown> {
  // A request without Host gets the spec's error body from the app, not an empty 400 from Node.
  const node: Record<string, unknown> = { requireHostHeader: false };
  if (settings === undefined) return { http: node };
  if (settings.maxHeaderBytes !== undefined) node['maxHeaderSize'] = settings.maxHeaderBytes;
  if (settings.headersTimeout !== undefined) {
    node['headersTimeout'] = settings.headersTimeout;
    node['connectionsCheckingInterval'] = Math.min(30_000, Math.max(100, Math.floor(settings.headersTimeout / 4)));
  }
  const options: Record<string, unknown> = settings.https === undefined ? { http: node } : { https: { ...node, ...settings.https } };
  if (settings.idleTimeout !== undefined) options['connectionTimeout'] = settings.idleTimeout;
  if (settings.keepAliveTimeout !== undefined) options['keepAliveTimeout'] = settings.keepAliveTimeout;
  if (settings.requestTimeout !== undefined) options['requestTimeout'] = settings.requestTimeout;
  if (settings.trustProxy !== undefined) options['trustProxy'] = settings.trustProxy;
  return options;
}
