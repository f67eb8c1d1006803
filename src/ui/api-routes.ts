import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import { listingRequest, listRepositories } from './catalog.ts';
import type { UiDependencies } from './dependencies.ts';
import type { UiSessions } from './session.ts';
import { clientAddress, deleteTag, imageView, operationsView, queryOf, repositoryView } from './views.ts';

/** Where the JSON API lives (docs/ui.md). */
export const apiPrefix = '/berth/api/v1';

function sendJson(reply: FastifyReply, value: unknown, status = 200): FastifyReply {
  return reply.code(status).header('content-type', 'application/json').header('cache-control', 'no-store').send(JSON.stringify(value));
}

/** `<name>/-/<rest>` below /repositories/. */
function split(request: FastifyRequest): { name: string; rest?: string } {
  const path = (request.params as { '*'?: string })['*'] ?? '';
  const marker = path.indexOf('/-/');
  return marker < 0 ? { name: path } : { name: path.slice(0, marker), rest: path.slice(marker + 3) };
}

/**
 * The JSON API the UI's pages are built from, for scripts: the same
 * viewer rules (Basic or Bearer credentials, or the UI's session cookie
 * with its CSRF token for writes), the same visibility as the catalog.
 * Errors are OCI error bodies.
 */
export function registerApi(app: FastifyInstance, deps: UiDependencies, sessions: UiSessions): void {
  app.get(`${apiPrefix}/session`, async (request, reply) => {
    const viewer = await sessions.viewer(request, reply);
    return sendJson(reply, { user: viewer.caller.user ?? null, admin: viewer.admin, accessControl: viewer.accessControl, csrf: viewer.byCookie ? viewer.csrf : null });
  });

  app.get(`${apiPrefix}/repositories`, async (request, reply) => {
    const viewer = await sessions.viewer(request, reply);
    const listing = await listRepositories(deps, viewer, listingRequest(queryOf(request)));
    return sendJson(reply, {
      repositories: listing.rows.map((row) => ({ ...row, pushedAt: row.pushedAt?.toISOString() ?? null })),
      next: listing.next ?? null,
      partial: listing.partial,
    });
  });

  app.get(`${apiPrefix}/repositories/*`, async (request, reply) => {
    const viewer = await sessions.viewer(request, reply);
    const { name, rest } = split(request);
    if (rest === undefined || rest === 'tags') {
      const view = await repositoryView(deps, viewer, name, queryOf(request));
      if (rest === undefined) {
        return sendJson(reply, {
          name: view.name,
          kind: view.kind,
          tags: view.summary?.tags ?? null,
          bytes: view.summary?.bytes ?? null,
          pushedAt: view.summary?.pushedAt?.toISOString() ?? null,
          upstream: view.upstream ?? null,
        });
      }
      return sendJson(reply, {
        name: view.name,
        tags: view.tags.rows.map((row) => ({ ...row, pushedAt: row.pushedAt?.toISOString() ?? null, pulledAt: row.pulledAt?.toISOString() ?? null })),
        next: view.tags.next ?? null,
      });
    }
    const manifest = /^manifests\/([^/]+)$/.exec(rest);
    if (manifest === null) throw new RegistryError('UNSUPPORTED', `no endpoint at ${request.url.slice(0, 200)}`, { status: 404 });
    const view = await imageView(deps, viewer, name, manifest[1] ?? '', clientAddress(request));
    const { host: _host, plainHttp: _plain, ...image } = view;
    return sendJson(reply, image);
  });

  app.delete(`${apiPrefix}/repositories/*`, async (request, reply) => {
    const viewer = await sessions.viewer(request, reply);
    const { name, rest } = split(request);
    const tag = rest === undefined ? null : /^tags\/([^/]+)$/.exec(rest);
    if (tag === null) throw new RegistryError('UNSUPPORTED', `no endpoint at ${request.url.slice(0, 200)}`, { status: 404 });
    sessions.checkWrite(request, viewer, request.headers['x-berth-csrf'] as string | undefined);
    const deleted = await deleteTag(deps, viewer, name, tag[1] ?? '');
    return sendJson(reply, { deleted: { repository: deleted.name, tag: deleted.tag } });
  });

  app.get(`${apiPrefix}/operations`, async (request, reply) => {
    const viewer = await sessions.viewer(request, reply);
    const view = await operationsView(deps, viewer, queryOf(request)['preview'] === 'retention');
    return sendJson(reply, view);
  });
}
