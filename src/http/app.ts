import { randomBytes } from 'node:crypto';
import fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { RepositoryRouter } from '../registry/router.ts';
import { AccessLog, declareCallers, noteCaller } from './access-log.ts';
import { queryValue } from './request-parts.ts';
import type { AccessPolicy, TokenIssuer } from './access.ts';
import { storageFullOf, type FullStore } from '../errors/storage-full.ts';
import { retryAfterSeconds } from '../errors/unavailable.ts';
import { answerClientError, answerExpectation, missingHost, sendError, shuttingDown } from './errors.ts';
import { listCatalog } from './listings.ts';
import { declareTargets, noteTarget, observeRequests, type RequestObserver } from './observer.ts';
import { clientAddress } from './client-address.ts';
import { hotReadFailure, hotReads, type RequestListener } from './hot-reads.ts';
import { registerRateLimit } from './rate-limit.ts';
import { serverOptions, type ServerSettings } from './server-options.ts';
import { registerTokenEndpoint } from './token.ts';
import { matchV2, methodNotAllowed, runV2, type HttpSettings, type V2Endpoint } from './v2-routes.ts';

export interface AppDependencies {
  router: RepositoryRouter;
  settings: HttpSettings;
  /** The access and error log; omitted, nothing is logged. */
  logger?: FastifyBaseLogger;
  /** Liveness: throws when the process cannot serve (`/livez`, `/healthz`). */
  health?: () => Promise<void>;
  /** Readiness (`/readyz`): whether the stores were reachable at the last background check. */
  readiness?: { readonly ready: boolean; report(): Record<string, unknown> };
  /** Who may do what; omitted, every request is allowed. */
  access?: AccessPolicy;
  /** Serves the token endpoint (/token) when given. */
  tokens?: TokenIssuer;
  /** TLS, size limits, timeouts and rate limits of the server itself. */
  server?: ServerSettings;
  /** Told about every request (metrics of the HTTP traffic). */
  observers?: readonly RequestObserver[];
  /** Told when a request failed because a store is full (a metric counts it). */
  onStorageFull?: (store: FullStore) => void;
  /** Endpoints beside the registry API (metrics, usage), each registering its routes (with the access policy, when there is one). */
  extensions?: readonly ((app: FastifyInstance, access?: AccessPolicy) => void)[];
  /**
   * Endpoints below /v2/<name>/ that a repository kind adds (droplet
   * uploads), tried after the core ones, with the same access checks.
   */
  v2Endpoints?: readonly V2Endpoint[];
}

/** The body of /v2/: bytes, so that GET and HEAD have the same content type (the framework adds a charset to strings). */
const emptyObject = Buffer.from('{}');

/** The methods of /v2/ and /v2/_catalog. */
const readMethods = ['GET', 'HEAD'] as const;

/**
 * Berth's routes take no JSON schemas (handlers read and check what they are
 * sent themselves), so Fastify's schema compilers (ajv, fast-json-stringify)
 * are never built, nor loaded; the production bundle leaves them out
 * (scripts/image/bundle.ts).
 */
const noSchemaCompilers = { buildValidator: schemasNotUsed, buildSerializer: schemasNotUsed };

function schemasNotUsed(): never {
  throw new Error("Berth's routes take no JSON schemas");
}

/** Headers that describe the error response itself, kept when an error replaces a half-built reply. */
const keptOnError = new Set(['docker-distribution-api-version', 'x-request-id', 'www-authenticate']);

/**
 * Builds the registry's HTTP application without listening, so tests use
 * `inject()` and the server wiring decides where it listens.
 */
export function createApp(dependencies: AppDependencies): FastifyInstance {
  const { router, settings } = dependencies;
  const nextId = requestIds();
  const app = fastify({
    ...(dependencies.logger === undefined ? {} : { loggerInstance: dependencies.logger }),
    logController: new AccessLog(),
    exposeHeadRoutes: false,
    requestIdHeader: 'x-request-id',
    genReqId: nextId,
    // Requests that arrive while closing are refused by the hook below, in the spec's error format.
    return503OnClosing: false,
    routerOptions: { maxParamLength: 4096 },
    schemaController: { compilersFactory: noSchemaCompilers },
    // What the framework and Node's parser reject is answered in the spec's error format too.
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => sendError(error, request, reply),
    clientErrorHandler: answerClientError,
    ...serverOptions(dependencies.server),
    // With TLS the instance is typed over an https server; what the app uses is the same.
  }) as unknown as FastifyInstance;
  const { access } = dependencies;

  // Bodies are streams the handlers read themselves: blobs flow straight to
  // storage, manifests are read with a size limit.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));

  app.setErrorHandler((error, request, reply) => {
    const full = storageFullOf(error);
    if (full !== undefined) dependencies.onStorageFull?.(full.store);
    for (const name of Object.keys(reply.getHeaders())) {
      if (!keptOnError.has(name)) reply.removeHeader(name);
    }
    return sendError(error, request, reply);
  });
  app.setNotFoundHandler((request, reply) => sendError(notFound(request), request, reply));
  // Node answers other expectations with an empty 417 when nobody listens for them.
  app.server.on('checkExpectation', answerExpectation);
  // While stopping, requests in flight finish, and then their connections
  // close instead of idling until the keep-alive timeout holds the exit up;
  // a request that arrives meanwhile is refused.
  let closing = false;
  // Hooks every request runs are callback-style: an async hook costs a promise and a microtask per request.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    if (closing) return done(shuttingDown());
    if (request.headers.host === undefined && request.raw.httpVersion === '1.1') return done(missingHost());
    done();
  });
  app.addHook('preClose', async () => {
    closing = true;
  });
  // The most frequent reads skip the framework (hot-reads.ts); not behind a rate limit, whose hook counts every request.
  if (dependencies.server?.rateLimit === undefined) {
    const [appListener] = app.server.listeners('request') as RequestListener[];
    if (appListener !== undefined) {
      app.server.removeListener('request', appListener);
      const hot = {
        router,
        observers: dependencies.observers ?? [],
        v2Endpoints: dependencies.v2Endpoints ?? [],
        address: clientAddress(dependencies.server?.trustProxy),
        nextId,
        closing: () => closing,
        closeIdleConnections: () => app.server.closeIdleConnections(),
      };
      app.server.on(
        'request',
        hotReads({ ...hot, ...(access === undefined ? {} : { access }), ...(dependencies.logger === undefined ? {} : { logger: dependencies.logger }) }, appListener),
      );
    }
  }
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (_request, _reply, done) => {
    if (closing) app.server.closeIdleConnections();
    done();
  });
  if (dependencies.server?.rateLimit !== undefined) registerRateLimit(app, dependencies.server.rateLimit, dependencies.server.rateLimitShare);
  if (dependencies.tokens !== undefined) registerTokenEndpoint(app, dependencies.tokens);

  declareTargets(app);
  declareCallers(app);
  if (dependencies.observers !== undefined && dependencies.observers.length > 0) observeRequests(app, dependencies.observers);
  for (const extend of dependencies.extensions ?? []) extend(app, access);

  // Liveness: answering at all is the proof; a stuck event loop answers nothing.
  const live = async (_request: FastifyRequest, reply: FastifyReply) => {
    await dependencies.health?.();
    return reply.header('content-type', 'application/json').header('cache-control', 'no-store').send('{"status":"ok"}');
  };
  app.get('/livez', live);
  app.get('/healthz', live);
  // Readiness reads the background checks' last result: a probe costs no round trip.
  app.get('/readyz', async (_request, reply) => {
    const readiness = dependencies.readiness;
    const ready = readiness?.ready ?? true;
    const body = { status: ready ? 'ready' : 'unavailable', dependencies: readiness?.report() ?? {} };
    reply
      .code(ready ? 200 : 503)
      .header('content-type', 'application/json')
      .header('cache-control', 'no-store');
    if (!ready) reply.header('retry-after', String(retryAfterSeconds));
    return reply.send(JSON.stringify(body));
  });

  const v2 = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
    reply.header('docker-distribution-api-version', 'registry/2.0');
    const path = (request.params as { '*'?: string })['*'] ?? '';
    const readMethod = request.method === 'GET' || request.method === 'HEAD';
    if (path === '') {
      if (!readMethod) throw methodNotAllowed(request.method, readMethods);
      await access?.authorize(request, [{ kind: 'signed-in' }]);
      return reply
        .header('content-type', 'application/json')
        .header('content-length', emptyObject.byteLength)
        .send(request.method === 'HEAD' ? undefined : emptyObject);
    }
    if (path === '_catalog') {
      if (!readMethod) throw methodNotAllowed(request.method, readMethods);
      const caller = await access?.authorize(request, [{ kind: 'catalog' }]);
      noteCaller(request, caller?.user);
      return listCatalog(request, reply, router, caller);
    }
    const match = matchV2(path, request.method, dependencies.v2Endpoints);
    // A containerd mirror request names its registry in ?ns=: the access check is for the name it maps to.
    const namespace = queryValue(request.query, 'ns');
    if (namespace !== undefined) match.name = router.mirrorName(match.name, namespace);
    noteTarget(request, match);
    const failed = hotReadFailure(request.raw);
    if (failed !== undefined) {
      noteCaller(request, failed.user);
      throw failed.error;
    }
    const caller = await access?.authorize(request, [{ kind: 'repository', name: match.name, action: match.action }]);
    noteCaller(request, caller?.user);
    return runV2(match, request, reply, router, settings, caller);
  };
  // Every method reaches the handler, so that a known endpoint answers one it does not take with 405 and Allow.
  app.route({ method: app.supportedMethods, url: '/v2/*', handler: v2 });
  app.route({ method: app.supportedMethods, url: '/v2', handler: v2 });
  return app;
}

/**
 * Request ids unique across processes and restarts: a random prefix per
 * process and a counter (random bytes per request cost 5 % of a manifest GET).
 */
function requestIds(): () => string {
  const prefix = randomBytes(5).toString('hex');
  let next = 0;
  return () => `${prefix}${(next++).toString(16).padStart(6, '0')}`;
}

function notFound(request: FastifyRequest): Error {
  return Object.assign(new Error(`no endpoint at ${request.url.slice(0, 200)}`), { statusCode: 404 });
}
