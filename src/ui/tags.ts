import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';
import type { RepositoryName, Tag } from '../oci/names.ts';
import type { Repository } from '../registry/repository.ts';
import type { UiDependencies } from './dependencies.ts';
import { loadManifest } from './images.ts';
import type { Viewer } from './session.ts';

export interface TagRow {
  tag: Tag;
  digest: Digest;
  mediaType: string;
  kind: 'index' | 'image';
  /** Platforms of an index (os/architecture[/variant]). */
  platforms: string[];
  size: number;
  pushedAt?: Date;
  pulledAt?: Date;
  immutable: boolean;
  /** Whether the viewer may delete the tag here now. */
  deletable: boolean;
}

export interface TagListing {
  rows: TagRow[];
  next?: string;
}

/** Tags read at most when filtering: a repository with more is filtered over its first ones. */
const maxFiltered = 10_000;

export function tagRequest(query: Record<string, string | undefined>): { filter: string; after?: string; limit: number } {
  const filter = (query['filter'] ?? '').trim();
  if (filter.length > 128 || !/^[A-Za-z0-9._-]*$/.test(filter)) throw new RegistryError('TAG_INVALID', 'filter tags by letters, digits, ".", "_" and "-"', { status: 400 });
  const limit = query['limit'] === undefined ? 50 : Number(query['limit']);
  if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new RegistryError('UNSUPPORTED', 'limit must be 1 to 200', { status: 400 });
  const after = query['after'];
  return { filter, limit, ...(after === undefined || after === '' ? {} : { after }) };
}

/** A page of the repository's tags (optionally those containing `filter`), with what each names. */
export async function listTagRows(
  deps: UiDependencies,
  viewer: Viewer,
  name: RepositoryName,
  repository: Repository,
  request: { filter: string; after?: string; limit: number },
  writable: boolean,
  signal?: AbortSignal,
): Promise<TagListing> {
  const page = { ...(request.after === undefined ? {} : { last: request.after }) };
  const lowered = request.filter.toLowerCase();
  const candidates =
    request.filter === ''
      ? await repository.tags({ ...page, limit: request.limit + 1 }, signal)
      : (await repository.tags({ ...page, limit: maxFiltered }, signal)).filter((tag) => tag.toLowerCase().includes(lowered));
  const shown = candidates.slice(0, request.limit);
  const [times, pulls] = await Promise.all([deps.browse.tagTimes(name, shown), deps.lastPulls(name)]);
  const deletesAllowed = deps.deletes && writable && viewer.caller.may(name, 'delete');
  const rows: TagRow[] = [];
  for (const tag of shown) {
    const manifest = await loadManifest(repository, { kind: 'tag', tag }, signal).catch((error: unknown) => {
      // A tag deleted while the page was built is left out.
      if (error instanceof RegistryError && error.code === 'MANIFEST_UNKNOWN') return undefined;
      throw error;
    });
    if (manifest === undefined) continue;
    const immutable = deps.immutable(name, tag);
    const pushedAt = times.get(tag);
    const pulledAt = pulls.get(manifest.digest);
    rows.push({
      tag,
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      kind: manifest.kind,
      platforms: manifest.platforms.map((platform) => platform.platform),
      size: manifest.size,
      immutable,
      deletable: deletesAllowed && !immutable,
      ...(pushedAt === undefined ? {} : { pushedAt }),
      ...(pulledAt === undefined ? {} : { pulledAt }),
    });
  }
  return { rows, ...(candidates.length > request.limit ? { next: shown[shown.length - 1] as string } : {}) };
}
