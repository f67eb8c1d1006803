import type { FastifyInstance } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import type { RepositoryName } from '../oci/names.ts';
import type { AccessPolicy } from './access.ts';
import { queryValues } from './request-parts.ts';

/** `GET /metrics`: Prometheus text exposition. */
export function metricsRoute(exposition: () => Promise<{ contentType: string; body: string }>): (app: FastifyInstance) => void {
  return (app) => {
    app.route({
      method: ['GET', 'HEAD'],
      url: '/metrics',
      handler: async (request, reply) => {
        const { contentType, body } = await exposition();
        reply.header('content-type', contentType).header('cache-control', 'no-store');
        return reply.send(request.method === 'HEAD' ? undefined : body);
      },
    });
  };
}

/** Usage of one set of repositories. */
export interface ScopeUsage {
  repositories: readonly string[];
  usedBytes: number;
  usedRepositories: number;
}

export interface UsageReport {
  quotas: readonly (ScopeUsage & { name: string; maxBytes?: number; maxRepositories?: number })[];
  /** The usage of the globs asked for with `?repositories=`. */
  selection?: ScopeUsage;
  /** Pull-through caches' size budgets (docs/proxy.md): a cache's prefix, or `all`. */
  caches?: readonly { name: string; usedBytes: number; maxBytes: number }[];
}

const repositoryGlob = /^[a-z0-9._\-/*?]{1,255}$/;

/**
 * `GET /berth/usage[?repositories=GLOB…]`: every quota with its current
 * usage, and the usage of the repositories the given globs match. With
 * access control, for signed-in callers (as `GET /v2/`), counting only the
 * repositories the caller may pull (admins: all).
 */
export function usageRoute(
  report: (globs: readonly string[], visible?: (name: RepositoryName) => boolean) => Promise<UsageReport>,
): (app: FastifyInstance, access?: AccessPolicy) => void {
  return (app, access) => {
    app.get('/berth/usage', async (request, reply) => {
      const caller = await access?.authorize(request, [{ kind: 'signed-in' }]);
      const globs = queryValues(request.query, 'repositories');
      const invalid = globs.find((glob) => !repositoryGlob.test(glob));
      if (invalid !== undefined) {
        throw new RegistryError('NAME_INVALID', `"${invalid.slice(0, 100)}" is not a repository glob (letters, digits, ".", "_", "-", "/", "*", "?")`);
      }
      return reply
        .header('content-type', 'application/json')
        .header('cache-control', 'no-store')
        .send(JSON.stringify(await report(globs, caller === undefined ? undefined : (name) => caller.sees(name))));
    });
  };
}
