import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import type { PeerChannel } from '../io/peers.ts';
import { RateLimiter, type RateLimitSettings, type Spending } from '../io/rate-limiter.ts';

const healthRoutes = new Set(['/healthz', '/livez', '/readyz']);

/** Refuses requests over the per-client limit before any other work is done for them. */
export function registerRateLimit(app: FastifyInstance, settings: RateLimitSettings, share?: PeerChannel<Spending>): void {
  const limiter = new RateLimiter(settings, share);
  app.addHook('onRequest', async (request) => {
    // Load balancers probe health often from one address; that is no abuse.
    if (healthRoutes.has(request.routeOptions.url ?? '')) return;
    const retryAfter = limiter.take(request.ip);
    if (retryAfter === undefined) return;
    throw new RegistryError(
      'TOOMANYREQUESTS',
      `too many requests from ${request.ip}: the limit is ${settings.requests} per ${settings.per / 1000}s (bursts of ${settings.burst}); retry in ${retryAfter}s`,
      { headers: { 'retry-after': String(retryAfter) }, detail: { retryAfter } },
    );
  });
}
