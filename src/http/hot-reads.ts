import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import { parseAccept } from '../oci/accept.ts';
import { parseDigest } from '../oci/digest.ts';
import type { RepositoryRouter } from '../registry/router.ts';
import type { AccessPolicy, AccessRequest } from './access.ts';
import type { ClientAddress } from './client-address.ts';
import { logAccess } from './access-log.ts';
import { blobHeaders } from './blobs.ts';
import { manifestHeaders, referenceToRead } from './manifests.ts';
import { countBytes, tellObservers, type CompletedRequest, type RequestObserver } from './observer.ts';
import { matchV2, openRepository, type V2Endpoint } from './v2-routes.ts';

/** Node's request listener: what Fastify registers on the server, and what hot reads hand requests to. */
export type RequestListener = (request: IncomingMessage, response: ServerResponse) => void;

export interface HotReadDependencies {
  router: RepositoryRouter;
  access?: AccessPolicy;
  logger?: FastifyBaseLogger;
  observers: readonly RequestObserver[];
  v2Endpoints: readonly V2Endpoint[];
  /** How the client's address, scheme and host are read (with trusted proxies, from their headers), as the app reads them. */
  address: ClientAddress;
  /** The request ids Fastify gives (the same sequence, so that ids stay unique). */
  nextId: () => string;
  /** Whether the server is stopping: then every request goes to the app, which refuses it. */
  closing: () => boolean;
  /** Closes the server's idle connections (a response finished while the server stops, as the app does). */
  closeIdleConnections: () => void;
}

/** What a hot read answers 200 with: its headers after the common ones, its length and its body (none for HEAD). */
interface Answer {
  headers: Record<string, string>;
  length: number;
  body: Uint8Array | undefined;
}

/** Headers that ask for more than a plain 200 of the whole representation: such requests go to the app. */
const conditionalHeaders = ['if-none-match', 'range'] as const;

/**
 * The requests a registry serves most, answered 200 straight on Node's
 * request, before the web framework: manifest GET and HEAD, blob HEAD. A
 * Kubernetes node re-checks its tags all day; for these requests Fastify's
 * request and reply objects, hooks and per-request child logger cost more
 * than the lookup (docs/benchmarks.md, "The hot path").
 *
 * Hot reads do what the app does for the same request, with the same parts:
 * the access policy, the repository (so pull events and pull times are
 * recorded where they always are), the same headers, the same access-log
 * line and the same observations for metrics. Anything else goes to `app`
 * untouched: another endpoint or method, a query other than containerd's
 * plain `?ns=`, an escaped path, a conditional or range request, a server
 * that is stopping. A
 * failure of any kind (a refused credential, an unknown name, a broken
 * store) is handed to the app with the request, and the app's error path
 * answers it (`hotReadFailure`), so there is one error path.
 */
export function hotReads(dependencies: HotReadDependencies, app: RequestListener): RequestListener {
  return (request, response) => {
    const started = performance.now();
    const url = request.url ?? '';
    const method = request.method;
    if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith('/v2/') || request.headers.host === undefined || dependencies.closing()) return app(request, response);
    for (const name of conditionalHeaders) if (request.headers[name] !== undefined) return app(request, response);
    const query = url.indexOf('?');
    let namespace: string | undefined;
    if (query !== -1) {
      namespace = containerdNamespace(url.slice(query + 1));
      if (namespace === undefined) return app(request, response);
    }
    const path = query === -1 ? url.slice(4) : url.slice(4, query);
    // An escaped path is the app's to decode (its router does), as is every query but a plain ?ns=.
    if (path.includes('%')) return app(request, response);
    // The endpoints' own matcher; a path it refuses is the app's to answer.
    let match: ReturnType<typeof matchV2>;
    try {
      match = matchV2(path, method, dependencies.v2Endpoints);
    } catch {
      return app(request, response);
    }
    if (match.label !== 'manifest' && !(match.label === 'blob' && method === 'HEAD')) return app(request, response);
    if (namespace !== undefined) match.name = dependencies.router.mirrorName(match.name, namespace);
    void new HotRead(dependencies, request, response, started, namespace).run(match, app);
  };
}

const silent = { error() {} };

const failureProperty = Symbol('berth.hotReadFailure');
type HandedOver = IncomingMessage & { [failureProperty]?: { error: unknown; user: string | undefined } };

/**
 * What made a hot read hand its request to the app, and who it was
 * authorized as by then: the app's handler throws it, so that its error
 * path answers it; undefined for requests the app gets first.
 */
export function hotReadFailure(request: IncomingMessage): { error: unknown; user: string | undefined } | undefined {
  return (request as HandedOver)[failureProperty];
}

/** `ns=<registry>` alone (containerd's mirror requests); undefined for any other query. */
function containerdNamespace(query: string): string | undefined {
  // Only plain values: an escaped one is the app's to decode, as it decodes every query.
  if (!query.startsWith('ns=') || /[&%+]/.test(query)) return undefined;
  return query.slice(3);
}

class HotRead implements AccessRequest {
  readonly headers: IncomingMessage['headers'];
  readonly #dependencies: HotReadDependencies;
  readonly #request: IncomingMessage;
  readonly #response: ServerResponse;
  readonly #started: number;
  readonly #namespace: string | undefined;
  readonly #abort = new AbortController();
  #user: string | undefined;
  readonly #id: string;
  #bytes = 0;

  constructor(dependencies: HotReadDependencies, request: IncomingMessage, response: ServerResponse, started: number, namespace: string | undefined) {
    this.headers = request.headers;
    this.#namespace = namespace;
    this.#dependencies = dependencies;
    this.#request = request;
    this.#response = response;
    this.#started = started;
    this.#id = this.#requestId();
  }

  get ip(): string {
    return this.#dependencies.address.ip(this.#request);
  }

  get protocol(): 'http' | 'https' {
    return this.#dependencies.address.protocol(this.#request);
  }

  get host(): string {
    return this.#dependencies.address.host(this.#request);
  }

  async run(match: ReturnType<typeof matchV2>, app: RequestListener): Promise<void> {
    const response = this.#response;
    const finished = () => this.#finished(match);
    response.once('close', finished);
    try {
      const { headers, length, body } = await this.#answer(match);
      this.#bytes = length;
      response.writeHead(200, {
        'x-request-id': this.#id,
        'docker-distribution-api-version': 'registry/2.0',
        ...headers,
        'content-length': String(length),
        // A request that began before the server started stopping closes its connection, as in the app.
        ...(this.#dependencies.closing() ? { connection: 'close' } : {}),
      });
      response.end(body);
    } catch (error) {
      // The client left: the line is written, nothing is left to answer.
      if (this.#abort.signal.aborted) return;
      response.removeListener('close', finished);
      if (response.headersSent) {
        response.destroy();
        return;
      }
      // The app answers with its error path, with what failed here (a credential is not checked twice).
      (this.#request as HandedOver)[failureProperty] = { error, user: this.#user };
      try {
        app(this.#request, response);
      } catch {
        // The app answers its own failures; should its listener ever throw, the connection goes rather than the process.
        response.destroy();
      }
    }
  }

  async #answer(match: ReturnType<typeof matchV2>): Promise<Answer> {
    const { access, router } = this.#dependencies;
    const caller = await access?.authorize(this, [{ kind: 'repository', name: match.name, action: 'pull' }]);
    this.#user = caller?.user;
    const signal = this.#abort.signal;
    const repository = await openRepository(router, match.name, signal);
    const head = this.#request.method === 'HEAD';
    if (match.label === 'blob') {
      const digest = parseDigest(match.params['digest'] ?? '');
      const size = await repository.blobSize(digest, signal);
      return { headers: blobHeaders(digest), length: size, body: undefined };
    }
    const reference = referenceToRead(match.params['reference'] ?? '');
    const manifest = await repository.manifest(reference, parseAccept(this.headers.accept), signal, head ? 'head' : 'pull');
    const { bytes } = manifest;
    return {
      headers: manifestHeaders(manifest),
      length: bytes.byteLength,
      body: head ? undefined : bytes,
    };
  }

  /** The request's id: the client's X-Request-Id, as the app takes it, or the next of the app's own. */
  #requestId(): string {
    const given = this.headers['x-request-id'];
    return typeof given === 'string' && given !== '' ? given : this.#dependencies.nextId();
  }

  /** The access-log line and the observations, once the response is done (or the client left). */
  #finished(match: ReturnType<typeof matchV2>): void {
    const response = this.#response;
    const request = this.#request;
    const complete = response.writableFinished;
    if (!complete) this.#abort.abort();
    if (this.#dependencies.closing()) this.#dependencies.closeIdleConnections();
    const elapsed = performance.now() - this.#started;
    const { logger, observers } = this.#dependencies;
    if (logger !== undefined)
      logAccess(logger, {
        reqId: this.#id,
        method: request.method ?? '',
        path: request.url ?? '',
        status: response.statusCode,
        bytes: this.#bytes,
        elapsedMs: elapsed,
        client: this.ip,
        user: this.#user,
        userAgent: this.headers['user-agent'],
        complete,
      });
    if (observers.length === 0) return;
    const completed: CompletedRequest = {
      endpoint: match.label,
      method: request.method ?? '',
      status: response.statusCode,
      repository: match.name,
      params: match.params,
      query: (name) => (name === 'ns' && this.#namespace !== undefined ? [this.#namespace] : []),
      durationSeconds: elapsed / 1000,
      bytesReceived: 0,
      bytesSent: 0,
    };
    countBytes(request.socket, completed);
    tellObservers(observers, completed, logger ?? silent);
  }
}
