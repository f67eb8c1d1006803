import type { FastifyReply, FastifyRequest } from 'fastify';
import { isRegistryError, RegistryError } from '../errors/registry-error.ts';
import { parseRepositoryName, type RepositoryName } from '../oci/names.ts';
import type { Repository, RepositoryWriter } from '../registry/repository.ts';
import type { RepositoryRouter } from '../registry/router.ts';
import type { Caller } from './access.ts';
import { deleteBlob, getBlob } from './blobs.ts';
import { listReferrers, listTags } from './listings.ts';
import { deleteManifest, getManifest, putManifest } from './manifests.ts';
import { cancelUpload, finishUpload, patchUpload, startUpload, uploadStatus } from './uploads.ts';

/** Limits and advertised values the endpoints apply. */
export interface HttpSettings {
  maxManifestBytes: number;
  /** Advertised as OCI-Chunk-Min-Length. */
  chunkMinLength: number;
  /** `?mount=` without `from` mounts from any repository the caller may pull (default true). */
  autoMount?: boolean;
}

/** What a repository-scoped request needs the caller to be allowed. */
export type Action = 'pull' | 'push' | 'delete';

/** One request to a repository-scoped endpoint, as its handler sees it. */
export interface V2Request {
  request: FastifyRequest;
  reply: FastifyReply;
  name: RepositoryName;
  /** Named groups of the endpoint's path pattern (reference, digest, id). */
  params: Record<string, string>;
  /** Aborted when the client goes away before the response is complete. */
  signal: AbortSignal;
  router: RepositoryRouter;
  settings: HttpSettings;
  repository(): Promise<Repository>;
  writer(): Promise<RepositoryWriter>;
  /** The authorized caller; absent when access control is off. */
  caller?: Caller;
}

type Handler = (context: V2Request) => Promise<unknown>;
type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** An endpoint below /v2/<name>/: the core ones, and those a repository kind adds (see AppDependencies.v2Endpoints). */
export interface V2Endpoint {
  /** Names the endpoint in metrics: a fixed set, never a repository name. */
  label: string;
  /** A substring every path of the endpoint contains. */
  marker: string;
  pattern: RegExp;
  methods: Partial<Record<Method, { handler: Handler; action: Action }>>;
}

export const pull = (handler: Handler) => ({ handler, action: 'pull' as const });
export const push = (handler: Handler) => ({ handler, action: 'push' as const });
export const remove = (handler: Handler) => ({ handler, action: 'delete' as const });

// Order matters: `blobs/uploads` must be tried before `blobs/<digest>`.
const endpoints: readonly V2Endpoint[] = [
  { label: 'tags', marker: '/tags/list', pattern: /^(?<name>.+)\/tags\/list$/, methods: { GET: pull(listTags) } },
  {
    label: 'manifest',
    marker: '/manifests/',
    pattern: /^(?<name>.+)\/manifests\/(?<reference>[^/]+)$/,
    methods: { GET: pull(getManifest), HEAD: pull(getManifest), PUT: push(putManifest), DELETE: remove(deleteManifest) },
  },
  { label: 'blob_upload_start', marker: '/blobs/uploads', pattern: /^(?<name>.+)\/blobs\/uploads\/?$/, methods: { POST: push(startUpload) } },
  {
    label: 'blob_upload',
    marker: '/blobs/uploads/',
    pattern: /^(?<name>.+)\/blobs\/uploads\/(?<id>[^/]+)$/,
    methods: { GET: push(uploadStatus), PATCH: push(patchUpload), PUT: push(finishUpload), DELETE: push(cancelUpload) },
  },
  { label: 'blob', marker: '/blobs/', pattern: /^(?<name>.+)\/blobs\/(?<digest>[^/]+)$/, methods: { GET: pull(getBlob), HEAD: pull(getBlob), DELETE: remove(deleteBlob) } },
  { label: 'referrers', marker: '/referrers/', pattern: /^(?<name>.+)\/referrers\/(?<digest>[^/]+)$/, methods: { GET: pull(listReferrers) } },
];

/** A matched endpoint: the repository, the handler and the access it needs. */
export interface V2Match {
  name: RepositoryName;
  params: Record<string, string>;
  handler: Handler;
  action: Action;
  /** The endpoint's label, for metrics. */
  label: string;
}

/** The first endpoint whose pattern the path matches (core ones first, then `extra`), with the pattern's groups. */
function findEndpoint(path: string, extra: readonly V2Endpoint[]): { endpoint: V2Endpoint; groups: Record<string, string> } | undefined {
  for (const endpoint of extra.length === 0 ? endpoints : [...endpoints, ...extra]) {
    // A substring test is far cheaper than the pattern and rules out most endpoints.
    if (!path.includes(endpoint.marker)) continue;
    const groups = endpoint.pattern.exec(path)?.groups;
    if (groups !== undefined) return { endpoint, groups };
  }
  return undefined;
}

/** Finds the endpoint for a path below /v2/; UNSUPPORTED (404 or 405) or NAME_INVALID otherwise. */
export function matchV2(path: string, method: string, extra: readonly V2Endpoint[] = []): V2Match {
  const found = findEndpoint(path, extra);
  if (found === undefined) throw new RegistryError('UNSUPPORTED', `no endpoint at /v2/${path.slice(0, 200)}`, { status: 404 });
  const { endpoint, groups } = found;
  // HEAD works wherever GET does: the handler leaves the body out.
  const route = endpoint.methods[method as Method] ?? (method === 'HEAD' ? endpoint.methods.GET : undefined);
  if (route === undefined) throw methodNotAllowed(method, Object.keys(endpoint.methods));
  const { name = '', ...params } = groups;
  return { name: parseRepositoryName(name), params, handler: route.handler, action: route.action, label: endpoint.label };
}

/** 405 with the Allow header (RFC 9110, section 15.5.6) for a method an endpoint does not take; HEAD is allowed wherever GET is. */
export function methodNotAllowed(method: string, methods: readonly string[]): RegistryError {
  const allow = methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods;
  return new RegistryError('UNSUPPORTED', `${method.slice(0, 20)} is not supported here; allowed: ${allow.join(', ')}`, {
    headers: { allow: allow.join(', ') },
  });
}

/** What a request below /v2/ addresses, for metrics; never throws. */
export interface V2Target {
  /** The endpoint's label ('manifest', 'blob', …), 'base', 'catalog' or 'unknown'. */
  endpoint: string;
  /** The repository name as written (not validated). */
  name?: string;
  /** The path's reference, digest or upload id. */
  params: Record<string, string>;
}

export function classifyV2(path: string, extra: readonly V2Endpoint[] = []): V2Target {
  if (path === '') return { endpoint: 'base', params: {} };
  if (path === '_catalog') return { endpoint: 'catalog', params: {} };
  const found = findEndpoint(path, extra);
  if (found === undefined) return { endpoint: 'unknown', params: {} };
  const { name, ...params } = found.groups;
  return { endpoint: found.endpoint.label, ...(name === undefined ? {} : { name }), params };
}

/** Runs a matched endpoint. */
export async function runV2(match: V2Match, request: FastifyRequest, reply: FastifyReply, router: RepositoryRouter, settings: HttpSettings, caller?: Caller): Promise<unknown> {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new RegistryError('UNKNOWN', 'client went away'));
  });
  let repository: Promise<Repository> | undefined;
  const open = (): Promise<Repository> => {
    repository ??= openRepository(router, match.name, controller.signal);
    return repository;
  };
  return match.handler({
    request,
    reply,
    name: match.name,
    params: match.params,
    signal: controller.signal,
    router,
    settings,
    ...(caller === undefined ? {} : { caller }),
    repository: open,
    writer: async () => {
      // A name its source cannot open (a new name under an archive prefix)
      // is as read-only as one it serves without a writer.
      const writer = (
        await open().catch((error: unknown) => {
          if (isRegistryError(error) && error.code === 'NAME_UNKNOWN') throw readOnly(match.name, error);
          throw error;
        })
      ).writer;
      if (writer === undefined) throw readOnly(match.name);
      return writer;
    },
  });
}

/** The repository a request addresses; NAME_UNKNOWN when no source serves the name. */
export async function openRepository(router: RepositoryRouter, name: RepositoryName, signal: AbortSignal): Promise<Repository> {
  const found = await router.open(name, signal);
  if (found === undefined) throw new RegistryError('NAME_UNKNOWN', `repository ${name} is not served here`);
  return found;
}

function readOnly(name: RepositoryName, cause?: unknown): RegistryError {
  return new RegistryError('UNSUPPORTED', `repository ${name} is read-only: it is not served from hosted storage`, {
    detail: { name },
    ...(cause === undefined ? {} : { cause }),
  });
}
