import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import { parseReference, parseRepositoryName, parseTag, type RepositoryName, type Tag } from '../oci/names.ts';
import type { Repository } from '../registry/repository.ts';
import { listRepositories } from './catalog.ts';
import type { UiDependencies } from './dependencies.ts';
import { loadManifest, readConfig, referrerTree } from './images.ts';
import type { ImageView } from './pages/image.ts';
import type { OperationsView } from './pages/operations.ts';
import type { RepositoryView } from './pages/repository.ts';
import type { Viewer } from './session.ts';
import { listTagRows, tagRequest } from './tags.ts';

/** The first value of each query parameter. */
export function queryOf(request: FastifyRequest): Record<string, string | undefined> {
  const values: Record<string, string | undefined> = {};
  for (const [key, value] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    const first = Array.isArray(value) ? value[0] : value;
    if (typeof first === 'string') values[key] = first;
  }
  return values;
}

/** The same answer whether the repository does not exist or the viewer may not see it. */
function unknownRepository(name: string): RegistryError {
  return new RegistryError('NAME_UNKNOWN', `there is no repository ${name} here, or you may not see it`, { detail: { name } });
}

/** The repository a viewer may pull, or NAME_UNKNOWN (also when it holds nothing). */
export async function openVisible(deps: UiDependencies, viewer: Viewer, rawName: string): Promise<{ name: RepositoryName; repository: Repository }> {
  let name: RepositoryName;
  try {
    name = parseRepositoryName(rawName);
  } catch {
    throw unknownRepository(rawName.slice(0, 255));
  }
  if (!viewer.caller.sees(name)) throw unknownRepository(name);
  const repository = await deps.open(name);
  if (repository === undefined) throw unknownRepository(name);
  return { name, repository };
}

export async function repositoryView(
  deps: UiDependencies,
  viewer: Viewer,
  rawName: string,
  query: Record<string, string | undefined>,
  signal?: AbortSignal,
): Promise<RepositoryView> {
  const { name, repository } = await openVisible(deps, viewer, rawName);
  const kind = deps.kindOf(name);
  const summary = await deps.browse.summary(name);
  const indexed = kind === 'hosted' || kind === 'proxy';
  if (indexed && summary === undefined) throw unknownRepository(name);
  const request = tagRequest(query);
  const writable = viewer.caller.may(name, 'delete') && (await deps.writer(name)) !== undefined;
  const tags = await listTagRows(deps, viewer, name, repository, request, writable, signal).catch((error: unknown) => {
    if (error instanceof RegistryError && error.code === 'NAME_UNKNOWN') throw unknownRepository(name);
    throw error;
  });
  const upstream = deps.upstreamOf(name);
  return {
    name,
    kind,
    filter: request.filter,
    tags,
    ...(summary === undefined ? {} : { summary }),
    ...(upstream === undefined ? {} : { upstream }),
    ...(request.after === undefined ? {} : { after: request.after }),
  };
}

export async function imageView(
  deps: UiDependencies,
  viewer: Viewer,
  rawName: string,
  rawReference: string,
  client: { host: string; plainHttp: boolean },
  signal?: AbortSignal,
): Promise<ImageView> {
  const { name, repository } = await openVisible(deps, viewer, rawName);
  let reference;
  try {
    reference = parseReference(rawReference);
  } catch {
    throw new RegistryError('MANIFEST_UNKNOWN', `no manifest ${rawReference.slice(0, 100)} in ${name}`);
  }
  const manifest = await loadManifest(repository, reference, signal);
  const config = manifest.config === undefined ? undefined : await readConfig(repository, manifest.config, signal);
  const referrers = await referrerTree(repository, manifest.digest, signal);
  const upstream = deps.upstreamOf(name, reference.kind === 'tag' ? reference.tag : undefined);
  return {
    name,
    kind: deps.kindOf(name),
    reference: rawReference,
    manifest,
    referrers,
    host: client.host,
    plainHttp: client.plainHttp,
    ...(config === undefined ? {} : { config }),
    ...(upstream === undefined ? {} : { upstream }),
  };
}

/** Deletes a tag as the viewer, with the same rules as DELETE /v2/<name>/manifests/<tag>. */
export async function deleteTag(deps: UiDependencies, viewer: Viewer, rawName: string, rawTag: string): Promise<{ name: RepositoryName; tag: Tag }> {
  const { name } = await openVisible(deps, viewer, rawName);
  const tag = parseTag(rawTag);
  if (!viewer.caller.may(name, 'delete')) throw new RegistryError('DENIED', `you may not delete in ${name}`);
  const writer = await deps.writer(name);
  if (writer === undefined) throw new RegistryError('UNSUPPORTED', `repository ${name} is read-only: it is not served from hosted storage`);
  await writer.deleteManifest({ kind: 'tag', tag });
  deps.events.record({ at: new Date(), action: 'delete', repository: name, reference: tag, ...(viewer.caller.user === undefined ? {} : { user: viewer.caller.user }) });
  return { name, tag };
}

export async function operationsView(deps: UiDependencies, viewer: Viewer, preview: boolean): Promise<OperationsView> {
  if (!viewer.admin) throw new RegistryError('DENIED', 'only administrators may see operations');
  const { operations } = deps;
  const largest = await listRepositories(deps, viewer, { search: '', match: 'substring', sort: 'size', limit: 10 });
  const activity = await operations.activity(50);
  let retentionPreview: OperationsView['retention']['preview'];
  if (preview && operations.retentionConfigured) retentionPreview = (await operations.retentionPreview()) ?? 'busy';
  return {
    quotas: await operations.quotas(),
    largest: largest.rows,
    gc: { last: activity.lastGc, interval: operations.gcInterval, ...(activity.nextGc === undefined ? {} : { next: activity.nextGc }) },
    retention: { configured: operations.retentionConfigured, ...(retentionPreview === undefined ? {} : { preview: retentionPreview }) },
    events: activity.events,
  };
}

/** Where clients reach this registry, as the request came in. */
export function clientAddress(request: FastifyRequest): { host: string; plainHttp: boolean } {
  return { host: request.host, plainHttp: request.protocol !== 'https' };
}
