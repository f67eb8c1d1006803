import { parseAccept } from '../oci/accept.ts';
import { RegistryError } from '../errors/registry-error.ts';
import { parseReference, parseTag, type Reference } from '../oci/names.ts';
import { notModified } from './conditional.ts';
import { hasBody, mediaTypeOf, queryValues, readLimitedBody } from './request-parts.ts';
import type { V2Request } from './v2-routes.ts';

/** GET and HEAD /v2/<name>/manifests/<reference>, negotiated by Accept; 304 when If-None-Match names it. */
export async function getManifest({ request, reply, params, signal, repository }: V2Request): Promise<unknown> {
  const reference = referenceToRead(params['reference'] ?? '');
  const head = request.method === 'HEAD';
  const manifest = await (await repository()).manifest(reference, parseAccept(request.headers.accept), signal, head ? 'head' : 'pull');
  const unchanged = notModified(request, reply, manifest.digest);
  if (unchanged !== undefined) return unchanged;
  reply.headers(manifestHeaders(manifest)).header('content-length', manifest.bytes.byteLength);
  return reply.send(head ? undefined : Buffer.from(manifest.bytes.buffer, manifest.bytes.byteOffset, manifest.bytes.byteLength));
}

/** The headers of a manifest answered in full (GET and HEAD), but its length; hot reads send the same. */
export function manifestHeaders(manifest: { mediaType: string; digest: string }): Record<string, string> {
  return { 'content-type': manifest.mediaType, 'docker-content-digest': manifest.digest, etag: `"${manifest.digest}"` };
}

/**
 * A reference that is neither a tag nor a digest names no manifest: reading
 * it is 404, as in Distribution and the conformance suite (writing it stays 400).
 */
export function referenceToRead(value: string): Reference {
  try {
    return parseReference(value);
  } catch (cause) {
    throw new RegistryError('MANIFEST_UNKNOWN', `no manifest "${value.slice(0, 200)}": not a valid tag or digest`, {
      cause,
      detail: { reference: value.slice(0, 200) },
    });
  }
}

/** PUT /v2/<name>/manifests/<reference>[?tag=…]: exact bytes stored, 201 with the digest. */
export async function putManifest({ request, reply, name, params, settings, writer }: V2Request): Promise<unknown> {
  const reference = parseReference(params['reference'] ?? '');
  const extraTags = queryValues(request.query, 'tag').map(parseTag);
  const target = await writer();
  const bytes = hasBody(request.raw) ? await readLimitedBody(request.raw, settings.maxManifestBytes, 'manifest') : Buffer.alloc(0);
  const result = await target.putManifest(reference, bytes, mediaTypeOf(request.headers['content-type']), extraTags);
  reply.code(201).headers({
    location: `/v2/${name}/manifests/${result.digest}`,
    'docker-content-digest': result.digest,
    'content-length': 0,
  });
  if (result.subject !== undefined) reply.header('oci-subject', result.subject);
  return reply.send();
}

/** DELETE /v2/<name>/manifests/<reference>: by digest the manifest and its tags, by tag only the tag. */
export async function deleteManifest({ reply, params, writer }: V2Request): Promise<unknown> {
  const reference = parseReference(params['reference'] ?? '');
  await (await writer()).deleteManifest(reference);
  return reply.code(202).header('content-length', 0).send();
}
