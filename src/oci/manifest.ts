import { RegistryError } from '../errors/registry-error.ts';
import { parseDigest, type Digest } from './digest.ts';
import { isForeignLayer, isIndexMediaType, isManifestMediaType, mediaTypes, type ManifestMediaType } from './media-types.ts';

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** What the registry needs to know about a manifest, taken from its bytes once at push. */
export interface ParsedManifest {
  mediaType: ManifestMediaType;
  /** Blobs that must exist in the repository (config and distributable layers). */
  blobs: Digest[];
  /** Manifests that must exist in the repository (children of an index). */
  children: Digest[];
  subject?: Digest;
  /** The artifact type a referrers listing reports for this manifest. */
  artifactType?: string;
  annotations?: Record<string, string>;
}

const schema1Types: readonly string[] = [mediaTypes.dockerSchema1, mediaTypes.dockerSchema1Signed];

/**
 * Checks a pushed manifest and extracts its references. `contentType` is the
 * request's Content-Type (without parameters), or undefined when absent.
 */
export function parseManifest(bytes: Uint8Array, contentType: string | undefined): ParsedManifest {
  if (contentType !== undefined && schema1Types.includes(contentType)) {
    throw schema1Error();
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (cause) {
    throw invalid('manifest is not valid UTF-8 JSON', { cause });
  }
  if (!isObject(json)) throw invalid('manifest must be a JSON object');
  if (json['schemaVersion'] === 1) throw schema1Error();
  if (json['schemaVersion'] !== 2) throw invalid('manifest schemaVersion must be 2');

  const mediaType = resolveMediaType(json, contentType);
  if (isIndexMediaType(mediaType)) {
    return parseIndex(json, mediaType);
  }
  return parseImageManifest(json, mediaType);
}

function resolveMediaType(json: Record<string, unknown>, contentType: string | undefined): ManifestMediaType {
  const declared = json['mediaType'];
  if (declared !== undefined && typeof declared !== 'string') throw invalid('mediaType must be a string');
  if (declared !== undefined && schema1Types.includes(declared)) throw schema1Error();
  if (declared !== undefined && contentType !== undefined && declared !== contentType && !isGenericJson(contentType)) {
    throw invalid(`Content-Type "${contentType}" does not match the manifest's mediaType "${declared}"`);
  }
  const candidate =
    declared ??
    (contentType !== undefined && !isGenericJson(contentType) ? contentType : undefined) ??
    (Array.isArray(json['manifests']) ? mediaTypes.ociIndex : mediaTypes.ociManifest);
  if (!isManifestMediaType(candidate)) {
    throw invalid(`unsupported manifest media type "${candidate}"`, {
      detail: { mediaType: candidate, supported: [mediaTypes.ociManifest, mediaTypes.ociIndex, mediaTypes.dockerManifest, mediaTypes.dockerManifestList] },
    });
  }
  if (candidate.startsWith('application/vnd.docker.') && declared === undefined) {
    throw invalid(`a ${candidate} manifest must declare its mediaType`);
  }
  return candidate;
}

function parseImageManifest(json: Record<string, unknown>, mediaType: ManifestMediaType): ParsedManifest {
  if (json['manifests'] !== undefined) throw invalid('an image manifest must not have "manifests"');
  const config = parseDescriptor(json['config'], 'config');
  const layersValue = json['layers'];
  if (!Array.isArray(layersValue)) throw invalid('manifest "layers" must be an array');
  const layers = layersValue.map((layer, index) => parseDescriptor(layer, `layers[${index}]`));
  const blobs = [config.digest, ...layers.filter((layer) => !isForeignLayer(layer.mediaType)).map((layer) => layer.digest)];
  const artifactType = optionalString(json, 'artifactType') ?? config.mediaType;
  return withOptional({ mediaType, blobs: unique(blobs), children: [] }, json, artifactType);
}

function parseIndex(json: Record<string, unknown>, mediaType: ManifestMediaType): ParsedManifest {
  if (json['layers'] !== undefined || json['config'] !== undefined) {
    throw invalid('an index must not have "layers" or "config"');
  }
  const manifestsValue = json['manifests'];
  if (!Array.isArray(manifestsValue)) throw invalid('index "manifests" must be an array');
  const children = manifestsValue.map((entry, index) => parseDescriptor(entry, `manifests[${index}]`).digest);
  return withOptional({ mediaType, blobs: [], children: unique(children) }, json, optionalString(json, 'artifactType'));
}

function withOptional(base: ParsedManifest, json: Record<string, unknown>, artifactType: string | undefined): ParsedManifest {
  const result: ParsedManifest = { ...base };
  if (json['subject'] !== undefined) result.subject = parseDescriptor(json['subject'], 'subject').digest;
  if (artifactType !== undefined) result.artifactType = artifactType;
  const annotations = parseAnnotations(json['annotations'], 'annotations');
  if (annotations !== undefined) result.annotations = annotations;
  return result;
}

export function parseDescriptor(value: unknown, where: string): Descriptor {
  if (!isObject(value)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string' || mediaType.length === 0) throw invalid(`${where}.mediaType must be a non-empty string`);
  if (typeof digest !== 'string') throw invalid(`${where}.digest must be a string`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalid(`${where}.size must be a non-negative integer`);
  }
  let parsed: Digest;
  try {
    parsed = parseDigest(digest);
  } catch (cause) {
    throw invalid(`${where}.digest "${digest.slice(0, 200)}" is not a valid digest`, { cause });
  }
  const descriptor: Descriptor = { mediaType, digest: parsed, size };
  const artifactType = optionalString(value, 'artifactType', where);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  const annotations = parseAnnotations(value['annotations'], `${where}.annotations`);
  if (annotations !== undefined) descriptor.annotations = annotations;
  return descriptor;
}

function parseAnnotations(value: unknown, where: string): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value) || !Object.values(value).every((entry) => typeof entry === 'string')) {
    throw invalid(`${where} must map strings to strings`);
  }
  return value as Record<string, string>;
}

function optionalString(json: Record<string, unknown>, key: string, where = ''): string | undefined {
  const value = json[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw invalid(`${where ? `${where}.` : ''}${key} must be a string`);
  return value;
}

function isGenericJson(contentType: string): boolean {
  return contentType === 'application/json' || contentType === 'application/octet-stream';
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function schema1Error(): RegistryError {
  return invalid('Docker schema 1 manifests are not supported; push with a client that writes schema 2 or OCI manifests');
}

function invalid(message: string, options: { cause?: unknown; detail?: unknown } = {}): RegistryError {
  return new RegistryError('MANIFEST_INVALID', message, options);
}
