import { tryParseDigest } from '../oci/digest.ts';
import { isRepositoryName, isTag, type Reference, type RepositoryName } from '../oci/names.ts';

/**
 * Where `berth copy` reads or writes, parsed from the transport syntax
 * skopeo uses: `docker://HOST/REPO[:TAG|@DIGEST]`, `oci:DIR[:REF]`,
 * `s3://BUCKET/PREFIX[:REF]`, `oci-archive:FILE[:REF]`,
 * `docker-archive:FILE[:NAME:TAG|:@INDEX]`, `docker-daemon:NAME[:TAG]`.
 */
export type Location =
  | { transport: 'docker'; registry: string; repository: RepositoryName; reference?: Reference }
  | { transport: 'oci'; path: string; reference?: Reference }
  | { transport: 's3'; bucket: string; prefix: string; reference?: Reference }
  | { transport: 'oci-archive'; path: string; reference?: Reference }
  | { transport: 'docker-archive'; path: string; name?: string; index?: number; reference?: Reference }
  | { transport: 'docker-daemon'; name: string; reference?: Reference };

export class LocationError extends Error {
  override name = 'LocationError';
}

/** Docker Hub as image names spell it, and where its API lives. */
export const dockerHub = { name: 'docker.io', api: 'registry-1.docker.io' } as const;

export function parseLocation(text: string): Location {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new LocationError(`"${text}": expected TRANSPORT:WHERE, such as docker://host/repo:tag or oci:./dir:tag`);
  const transport = text.slice(0, colon);
  const rest = text.slice(colon + 1);
  switch (transport) {
    case 'docker':
      return parseDocker(rest.replace(/^\/\//, ''), text);
    case 's3':
      return parseS3(rest.replace(/^\/\//, ''), text);
    case 'oci':
    case 'oci-archive':
      return { transport, ...splitPathReference(rest, text) };
    case 'docker-archive':
      return parseDockerArchive(rest, text);
    case 'docker-daemon':
      return parseDockerDaemon(rest, text);
    default:
      throw new LocationError(`"${text}": unknown transport "${transport}"; use docker://, oci:, s3://, oci-archive:, docker-archive: or docker-daemon:`);
  }
}

/** `HOST/REPO[:TAG|@DIGEST]`, with Docker's defaults: docker.io, library/, latest (a tag is not added here). */
function parseDocker(rest: string, text: string): Location {
  if (rest === '') throw new LocationError(`"${text}": name a repository, such as docker://registry.example.com/team/app:1.0`);
  let name = rest;
  let reference: Reference | undefined;
  const at = name.indexOf('@');
  if (at !== -1) {
    const digest = tryParseDigest(name.slice(at + 1));
    if (digest === undefined) throw new LocationError(`"${text}": "${name.slice(at + 1)}" is not a digest`);
    reference = { kind: 'digest', digest };
    name = name.slice(0, at);
  } else {
    const lastColon = name.lastIndexOf(':');
    if (lastColon > name.lastIndexOf('/')) {
      const tag = name.slice(lastColon + 1);
      if (!isTag(tag)) throw new LocationError(`"${text}": "${tag}" is not a valid tag`);
      reference = { kind: 'tag', tag };
      name = name.slice(0, lastColon);
    }
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  const hasHost = first.includes('.') || first.includes(':') || first === 'localhost';
  let registry = hasHost ? first : dockerHub.name;
  let path = hasHost ? name.slice(slash + 1) : name;
  if (registry === 'index.docker.io' || registry === dockerHub.api) registry = dockerHub.name;
  if (registry === dockerHub.name && !path.includes('/')) path = `library/${path}`;
  if (!isRepositoryName(path)) throw new LocationError(`"${text}": "${path}" is not a valid repository name (lowercase, digits, separators)`);
  return reference === undefined ? { transport: 'docker', registry, repository: path } : { transport: 'docker', registry, repository: path, reference };
}

function parseS3(rest: string, text: string): Location {
  const { path, reference } = splitPathReference(rest, text);
  const slash = path.indexOf('/');
  const bucket = slash === -1 ? path : path.slice(0, slash);
  const prefix = slash === -1 ? '' : path.slice(slash + 1).replace(/\/+$/, '');
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new LocationError(`"${text}": "${bucket}" is not a valid bucket name`);
  return reference === undefined ? { transport: 's3', bucket, prefix } : { transport: 's3', bucket, prefix, reference };
}

/** `PATH[:REF]` or `PATH@DIGEST`; the first colon separates, as in skopeo. */
function splitPathReference(rest: string, text: string): { path: string; reference?: Reference } {
  const digestAt = /@(sha256|sha512):[a-f0-9]+$/.exec(rest);
  if (digestAt !== null) {
    const digest = tryParseDigest(digestAt[0].slice(1));
    if (digest === undefined) throw new LocationError(`"${text}": invalid digest`);
    return { path: requirePath(rest.slice(0, digestAt.index), text), reference: { kind: 'digest', digest } };
  }
  const colon = rest.indexOf(':');
  if (colon === -1) return { path: requirePath(rest, text) };
  const ref = rest.slice(colon + 1);
  const path = requirePath(rest.slice(0, colon), text);
  if (ref === '') return { path };
  if (!isTag(ref)) throw new LocationError(`"${text}": "${ref}" is not a valid tag`);
  return { path, reference: { kind: 'tag', tag: ref } };
}

function parseDockerArchive(rest: string, text: string): Location {
  const colon = rest.indexOf(':');
  const path = requirePath(colon === -1 ? rest : rest.slice(0, colon), text);
  const ref = colon === -1 ? '' : rest.slice(colon + 1);
  if (ref === '') return { transport: 'docker-archive', path };
  if (ref.startsWith('@')) {
    const index = Number(ref.slice(1));
    if (!Number.isSafeInteger(index) || index < 0) throw new LocationError(`"${text}": "${ref}" is not @INDEX`);
    return { transport: 'docker-archive', path, index };
  }
  const tagColon = ref.lastIndexOf(':');
  const hasTag = tagColon > ref.lastIndexOf('/');
  const name = hasTag ? ref : `${ref}:latest`;
  const tag = name.slice(name.lastIndexOf(':') + 1);
  if (!isTag(tag)) throw new LocationError(`"${text}": "${tag}" is not a valid tag`);
  return { transport: 'docker-archive', path, name, reference: { kind: 'tag', tag } };
}

/** `NAME[:TAG]` as `docker images` shows it (`app`, `registry.example.com:5000/team/app`); the tag follows the last colon after the last slash. */
function parseDockerDaemon(rest: string, text: string): Location {
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  const name = hasTag ? rest.slice(0, colon) : rest;
  if (name === '' || !/^[a-z0-9]+([._:/-]+[a-z0-9]+)*$/.test(name))
    throw new LocationError(`"${text}": "${name}" is not an image name such as app or registry.example.com/team/app`);
  if (!hasTag) return { transport: 'docker-daemon', name };
  const tag = rest.slice(colon + 1);
  if (!isTag(tag)) throw new LocationError(`"${text}": "${tag}" is not a valid tag`);
  return { transport: 'docker-daemon', name, reference: { kind: 'tag', tag } };
}

function requirePath(path: string, text: string): string {
  if (path === '') throw new LocationError(`"${text}": the path is empty`);
  return path;
}

/** The location without its reference, as text: sync names tags itself. */
export function describeLocation(location: Location): string {
  switch (location.transport) {
    case 'docker':
      return `docker://${location.registry}/${location.repository}`;
    case 's3':
      return `s3://${location.bucket}/${location.prefix}`;
    case 'docker-daemon':
      return `docker-daemon:${location.name}`;
    default:
      return `${location.transport}:${location.path}`;
  }
}
