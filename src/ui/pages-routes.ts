import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRegistryError } from '../errors/registry-error.ts';
import { listingRequest, listRepositories } from './catalog.ts';
import type { UiDependencies } from './dependencies.ts';
import { localNext, readForm } from './forms.ts';
import { query } from './html.ts';
import { assets, sendFragment, sendPage, securityHeaders, type PageOptions } from './layout.ts';
import { imagePage } from './pages/image.ts';
import { operationsPage } from './pages/operations.ts';
import { repositoriesPage, repositoryHref, repositoryResults } from './pages/repositories.ts';
import { confirmDeletePage, repositoryPage, tagResults } from './pages/repository.ts';
import { errorPage, signInPage } from './pages/sign-in.ts';
import type { UiSessions, Viewer } from './session.ts';
import { clientAddress, deleteTag, imageView, operationsView, queryOf, repositoryView } from './views.ts';

type PageHandler = (request: FastifyRequest, reply: FastifyReply, viewer: Viewer) => Promise<unknown>;

/** The HTML pages under /ui/. */
export function registerPages(app: FastifyInstance, deps: UiDependencies, sessions: UiSessions): void {
  const page = (handler: PageHandler) => async (request: FastifyRequest, reply: FastifyReply) => {
    let viewer: Viewer | undefined;
    try {
      viewer = await sessions.viewer(request, reply);
      return await handler(request, reply, viewer);
    } catch (error) {
      return sendErrorPage(request, reply, viewer, error);
    }
  };

  for (const asset of assets) {
    app.get(asset.path, async (_request, reply) =>
      reply.header('content-type', asset.type).header('cache-control', 'public, max-age=31536000, immutable').header('x-content-type-options', 'nosniff').send(asset.body),
    );
  }
  // Browsers opening the registry's address land on the UI; API clients keep their 404.
  app.get('/', async (request, reply) => {
    if (!(request.headers.accept ?? '').includes('text/html')) return reply.callNotFound();
    return reply.redirect('/ui/', 302);
  });
  app.get('/ui', async (_request, reply) => reply.redirect('/ui/', 302));

  app.get(
    '/ui/',
    page(async (request, reply, viewer) => {
      const listingQuery = listingRequest(queryOf(request));
      const listing = await listRepositories(deps, viewer, listingQuery);
      if (queryOf(request)['partial'] === '1') return sendFragment(reply, repositoryResults(listingQuery, listing));
      return sendPage(request, reply, viewer, { title: 'Repositories', section: 'repositories' }, repositoriesPage(viewer, listingQuery, listing));
    }),
  );

  app.get(
    '/ui/r/*',
    page(async (request, reply, viewer) => {
      const { name, rest } = splitPath(request);
      if (rest === undefined) {
        const view = await repositoryView(deps, viewer, name, queryOf(request), signalOf(request));
        if (queryOf(request)['partial'] === '1') return sendFragment(reply, tagResults(viewer, view));
        const notice = queryOf(request)['deleted'];
        return sendPage(
          request,
          reply,
          viewer,
          { title: view.name, section: 'repositories', ...(notice === undefined ? {} : { notice: { kind: 'ok', text: `Deleted the tag ${notice}.` } }) },
          repositoryPage(viewer, view),
        );
      }
      const deletion = /^tags\/([^/]+)\/delete$/.exec(rest);
      if (deletion !== null) return sendPage(request, reply, viewer, { title: `Delete ${deletion[1] ?? ''}` }, confirmDeletePage(viewer, name, deletion[1] ?? ''));
      const view = await imageView(deps, viewer, name, rest, clientAddress(request), signalOf(request));
      return sendPage(request, reply, viewer, { title: `${view.name} ${view.reference}`, section: 'repositories' }, imagePage(view));
    }),
  );

  app.post(
    '/ui/r/*',
    page(async (request, reply, viewer) => {
      const { name, rest } = splitPath(request);
      const deletion = rest === undefined ? null : /^tags\/([^/]+)\/delete$/.exec(rest);
      if (deletion === null) return reply.callNotFound();
      const form = await readForm(request);
      sessions.checkWrite(request, viewer, form.get('csrf') ?? undefined);
      const deleted = await deleteTag(deps, viewer, name, deletion[1] ?? '');
      return reply.redirect(`${repositoryHref(deleted.name)}${query({ deleted: deleted.tag })}`, 303);
    }),
  );

  app.get(
    '/ui/operations',
    page(async (request, reply, viewer) => {
      const view = await operationsView(deps, viewer, queryOf(request)['preview'] === 'retention');
      return sendPage(request, reply, viewer, { title: 'Operations', section: 'operations' }, operationsPage(view));
    }),
  );

  app.get(
    '/ui/sign-in',
    page(async (request, reply, viewer) =>
      sendPage(request, reply, viewer, { title: 'Sign in', section: 'sign-in' }, signInPage({ next: localNext(queryOf(request)['next']), available: sessions.signInAvailable })),
    ),
  );

  app.post('/ui/sign-in', async (request, reply) => {
    const form = await readForm(request);
    const user = form.get('user') ?? '';
    const next = localNext(form.get('next'));
    try {
      await sessions.signIn(request, reply, user, form.get('password') ?? '');
    } catch (error) {
      const tooMany = isRegistryError(error) && error.code === 'TOOMANYREQUESTS';
      if (!isRegistryError(error) || (error.code !== 'UNAUTHORIZED' && !tooMany)) throw error;
      const text = tooMany ? error.message : 'Wrong user name or password.';
      return sendPage(
        request,
        reply,
        undefined,
        { title: 'Sign in', section: 'sign-in', status: tooMany ? 429 : 401, notice: { kind: 'error', text } },
        signInPage({ user, next, available: true }),
      );
    }
    return reply.redirect(next, 303);
  });

  app.post(
    '/ui/sign-out',
    page(async (request, reply, viewer) => {
      const form = await readForm(request);
      sessions.checkWrite(request, viewer, form.get('csrf') ?? undefined);
      sessions.clear(request, reply);
      return reply.redirect('/ui/', 303);
    }),
  );
}

function signalOf(request: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  request.raw.once('close', () => {
    if (!request.raw.complete) controller.abort();
  });
  return controller.signal;
}

/** `/ui/r/<name>[/-/<rest>]`: repository names hold "/", never "-" alone as a component. */
function splitPath(request: FastifyRequest): { name: string; rest?: string } {
  const path = decodeURIComponent((request.params as { '*'?: string })['*'] ?? '');
  const marker = path.indexOf('/-/');
  return marker < 0 ? { name: path.replace(/\/$/, '') } : { name: path.slice(0, marker), rest: path.slice(marker + 3) };
}

function sendErrorPage(request: FastifyRequest, reply: FastifyReply, viewer: Viewer | undefined, error: unknown): FastifyReply {
  if (!isRegistryError(error) || error.status >= 500) {
    request.log.error({ err: error, requestId: request.id }, 'UI page failed');
    return sendPage(
      request,
      reply,
      viewer,
      { title: 'Something went wrong', status: 500 },
      errorPage('Something went wrong', `The page could not be built; quote request id ${request.id} to the operator.`),
    );
  }
  const options: PageOptions = { title: 'Not here', status: error.status };
  if (error.status === 404) return sendPage(request, reply, viewer, options, errorPage('Not found', error.message));
  if (error.status === 401) {
    reply.headers(securityHeaders);
    return reply.redirect(`/ui/sign-in${query({ next: request.url })}`, 303);
  }
  return sendPage(request, reply, viewer, { ...options, title: 'Refused' }, errorPage(error.status === 403 ? 'Not allowed' : 'Cannot do that', error.message));
}
