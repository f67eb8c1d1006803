import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import proxyAddr from '@fastify/proxy-addr';

/** Who sent a request and how it addressed the registry: what the access log and access checks read. */
export interface ClientAddress {
  ip(request: IncomingMessage): string;
  /** As the proxy wrote it when it is trusted (typed as the framework types it). */
  protocol(request: IncomingMessage): 'http' | 'https';
  host(request: IncomingMessage): string;
}

/**
 * Reads a request's client address, scheme and host as the app's framework
 * does with the same `limits.trustProxy` (Fastify's request `ip`,
 * `protocol` and `host`): from the connection, or, when the connection
 * comes from a trusted proxy, from its `X-Forwarded-For`, `-Proto` and
 * `-Host` headers (the last value of each).
 */
export function clientAddress(trustProxy: boolean | readonly string[] | undefined): ClientAddress {
  const trusted = trustProxy === undefined || trustProxy === false ? undefined : trustProxy === true ? () => true : proxyAddr.compile([...trustProxy]);
  const secure = (request: IncomingMessage): 'http' | 'https' => ((request.socket as Socket & { encrypted?: boolean }).encrypted === true ? 'https' : 'http');
  if (trusted === undefined) {
    return {
      ip: (request) => request.socket.remoteAddress ?? '',
      protocol: secure,
      host: (request) => request.headers.host ?? '',
    };
  }
  const fromProxy = (request: IncomingMessage) => request.socket.remoteAddress !== undefined && trusted(request.socket.remoteAddress, 0);
  return {
    ip: (request) => {
      const addresses = proxyAddr.all(request, trusted);
      return addresses[addresses.length - 1] ?? '';
    },
    protocol: (request) => {
      const forwarded = request.headers['x-forwarded-proto'];
      return typeof forwarded === 'string' && forwarded !== '' && fromProxy(request) ? (lastEntry(forwarded) as 'http' | 'https') : secure(request);
    },
    host: (request) => {
      const forwarded = request.headers['x-forwarded-host'];
      return typeof forwarded === 'string' && forwarded !== '' && fromProxy(request) ? lastEntry(forwarded) : (request.headers.host ?? '');
    },
  };
}

/** The last of a header's comma-separated values (a header set more than once). */
function lastEntry(value: string): string {
  const comma = value.lastIndexOf(',');
  return comma === -1 ? value.trim() : value.slice(comma + 1).trim();
}
