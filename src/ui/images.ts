import { readAtMost } from '../io/bounded-read.ts';
import { httpRequest } from '../io/http-request.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { acceptAnything } from '../oci/accept.ts';
import { tryParseDigest, type Digest } from '../oci/digest.ts';
import type { Descriptor } from '../oci/manifest.ts';
import type { Reference, RepositoryName, Tag } from '../oci/names.ts';
import type { ManifestContent, Repository } from '../registry/repository.ts';

/** Bytes of a config blob read at most: configs are small; anything larger is not shown. */
const maxConfigBytes = 1024 * 1024;
/** Referrers shown at most, over all levels of the tree. */
const maxReferrers = 200;

export interface Platform {
  digest: Digest;
  /** os/architecture[/variant], or "unknown". */
  platform: string;
  mediaType: string;
  size: number;
}

/** A manifest as the UI shows it. */
export interface ManifestSummary {
  digest: Digest;
  mediaType: string;
  kind: 'index' | 'image';
  /** Of an index: its children. */
  platforms: Platform[];
  /** Of an image: its config. */
  config?: Descriptor;
  layers: Descriptor[];
  /** Config and layers (an image), or every child image (an index). */
  size: number;
  artifactType?: string;
  subject?: Digest;
  annotations: Record<string, string>;
}

interface ParsedJson {
  mediaType?: unknown;
  manifests?: unknown;
  config?: unknown;
  layers?: unknown;
  subject?: unknown;
  artifactType?: unknown;
  annotations?: unknown;
}

function descriptors(value: unknown): (Descriptor & { platform?: Record<string, unknown> })[] {
  if (!Array.isArray(value)) return [];
  return value.filter(
    (entry): entry is Descriptor & { platform?: Record<string, unknown> } => typeof entry === 'object' && entry !== null && typeof (entry as Descriptor).digest === 'string',
  );
}

function platformName(platform: Record<string, unknown> | undefined): string {
  if (platform === undefined) return 'unknown';
  return [platform['os'], platform['architecture'], platform['variant']].filter((part) => typeof part === 'string' && part !== '').join('/') || 'unknown';
}

/** What a manifest's bytes say; sizes of an index's children come from loading them (`children`). */
export async function summarize(content: ManifestContent, children?: (digest: Digest) => Promise<ManifestSummary | undefined>): Promise<ManifestSummary> {
  const json = JSON.parse(Buffer.from(content.bytes).toString('utf8')) as ParsedJson;
  const annotations = typeof json.annotations === 'object' && json.annotations !== null ? (json.annotations as Record<string, string>) : {};
  const subject = typeof json.subject === 'object' && json.subject !== null ? tryParseDigest(String((json.subject as Descriptor).digest)) : undefined;
  const base = {
    digest: content.digest,
    mediaType: content.mediaType,
    annotations,
    ...(typeof json.artifactType === 'string' ? { artifactType: json.artifactType } : {}),
    ...(subject === undefined ? {} : { subject }),
  };
  if (Array.isArray(json.manifests)) {
    const platforms = descriptors(json.manifests).map((entry) => ({ digest: entry.digest, platform: platformName(entry.platform), mediaType: entry.mediaType, size: entry.size }));
    let size = 0;
    for (const platform of platforms.slice(0, 16)) {
      const child = await children?.(platform.digest).catch(() => undefined);
      size += child?.size ?? platform.size;
      platform.size = child?.size ?? platform.size;
    }
    return { ...base, kind: 'index', platforms, layers: [], size };
  }
  const config = descriptors([json.config])[0];
  const layers = descriptors(json.layers);
  const size = (config?.size ?? 0) + layers.reduce((sum, layer) => sum + (Number(layer.size) || 0), 0);
  const artifactType =
    base.artifactType ??
    (config !== undefined && config.mediaType !== 'application/vnd.oci.image.config.v1+json' && config.mediaType !== 'application/vnd.docker.container.image.v1+json'
      ? config.mediaType
      : undefined);
  return { ...base, ...(artifactType === undefined ? {} : { artifactType }), kind: 'image', platforms: [], ...(config === undefined ? {} : { config }), layers, size };
}

/** The manifest a reference names, summarized (with its children's sizes for an index). */
export async function loadManifest(repository: Repository, reference: Reference, signal?: AbortSignal): Promise<ManifestSummary> {
  // Shown, not pulled: a page view is no pull event and keeps nothing from retention.
  const content = await repository.manifest(reference, acceptAnything, signal, 'head');
  return summarize(content, async (digest) => summarize(await repository.manifest({ kind: 'digest', digest }, acceptAnything, signal, 'head')));
}

/** The image config's fields people look at. */
export interface ImageConfig {
  created?: string;
  architecture?: string;
  os?: string;
  user?: string;
  workingDir?: string;
  entrypoint?: string[];
  cmd?: string[];
  env: string[];
  labels: Record<string, string>;
  exposedPorts: string[];
  history: { created?: string; createdBy?: string; emptyLayer: boolean; comment?: string }[];
}

export async function readConfig(repository: Repository, config: Descriptor, signal?: AbortSignal): Promise<ImageConfig | undefined> {
  if (config.size > maxConfigBytes) return undefined;
  const bytes = await readBlob(repository, config.digest, signal).catch(() => undefined);
  if (bytes === undefined) return undefined;
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const inner = (typeof json['config'] === 'object' && json['config'] !== null ? json['config'] : {}) as Record<string, unknown>;
  const strings = (value: unknown) => (Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : undefined);
  const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);
  const history = Array.isArray(json['history']) ? (json['history'] as Record<string, unknown>[]) : [];
  const result: ImageConfig = {
    env: strings(inner['Env']) ?? [],
    labels: typeof inner['Labels'] === 'object' && inner['Labels'] !== null ? (inner['Labels'] as Record<string, string>) : {},
    exposedPorts: typeof inner['ExposedPorts'] === 'object' && inner['ExposedPorts'] !== null ? Object.keys(inner['ExposedPorts']) : [],
    history: history.slice(0, 500).map((entry) => ({
      ...(text(entry['created']) === undefined ? {} : { created: text(entry['created']) as string }),
      ...(text(entry['created_by']) === undefined ? {} : { createdBy: text(entry['created_by']) as string }),
      ...(text(entry['comment']) === undefined ? {} : { comment: text(entry['comment']) as string }),
      emptyLayer: entry['empty_layer'] === true,
    })),
  };
  const optional: [keyof ImageConfig, string | string[] | undefined][] = [
    ['created', text(json['created'])],
    ['architecture', text(json['architecture'])],
    ['os', text(json['os'])],
    ['user', text(inner['User'])],
    ['workingDir', text(inner['WorkingDir'])],
    ['entrypoint', strings(inner['Entrypoint'])],
    ['cmd', strings(inner['Cmd'])],
  ];
  for (const [key, value] of optional) if (value !== undefined) Object.assign(result, { [key]: value });
  return result;
}

/** A config blob's bytes, never more than `maxConfigBytes` held (readConfig refuses bigger descriptors; a store that sends more fails). */
async function readBlob(repository: Repository, digest: Digest, signal?: AbortSignal): Promise<Buffer> {
  const tooLarge = () => new RegistryError('SIZE_INVALID', `blob ${digest} is larger than its descriptor says`);
  const body = await repository.openBlob(digest, undefined, signal);
  if (body.kind === 'redirect') {
    const response = await httpRequest(body.url, { signal });
    if (!response.ok || response.body === null) throw new Error(`blob ${digest}: ${response.status}`);
    return readAtMost(response.body, maxConfigBytes, tooLarge);
  }
  if (body.kind === 'file') {
    const { handle, start, end } = body.region;
    try {
      const buffer = Buffer.alloc(Math.min(end - start + 1, maxConfigBytes));
      await handle.read(buffer, 0, buffer.length, start);
      return buffer;
    } finally {
      await handle.close();
    }
  }
  return readAtMost(body.stream, maxConfigBytes, tooLarge);
}

/** A referrer with its own referrers (a signature of an SBOM). */
export interface ReferrerNode {
  descriptor: Descriptor;
  children: ReferrerGroup[];
}

/** Referrers of one artifact type. */
export interface ReferrerGroup {
  artifactType: string;
  referrers: ReferrerNode[];
}

/** Referrers of `subject`, grouped by artifact type, with theirs below them (three levels at most). */
export async function referrerTree(repository: Repository, subject: Digest, signal?: AbortSignal, depth = 3, budget = { left: maxReferrers }): Promise<ReferrerGroup[]> {
  if (depth === 0 || budget.left <= 0) return [];
  const found = (await repository.referrers(subject, undefined, signal)).slice(0, budget.left);
  budget.left -= found.length;
  const groups = new Map<string, ReferrerNode[]>();
  for (const descriptor of found) {
    const type = descriptor.artifactType ?? descriptor.mediaType;
    const children = await referrerTree(repository, descriptor.digest, signal, depth - 1, budget);
    groups.set(type, [...(groups.get(type) ?? []), { descriptor, children }]);
  }
  return [...groups].sort(([a], [b]) => a.localeCompare(b)).map(([artifactType, referrers]) => ({ artifactType, referrers }));
}

/** A friendly name for common artifact types. */
export function artifactLabel(artifactType: string): string {
  if (/cosign|sigstore|notary|signature/i.test(artifactType)) return 'Signatures';
  if (/spdx|cyclonedx|sbom|syft/i.test(artifactType)) return 'SBOMs';
  if (/in-toto|attestation|provenance|slsa|vex/i.test(artifactType)) return 'Attestations';
  return artifactType;
}

export type { RepositoryName, Tag };
