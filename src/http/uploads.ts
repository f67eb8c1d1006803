import type { FastifyReply } from 'fastify';
import { isRegistryError, RegistryError } from '../errors/registry-error.ts';
import { parseDigest } from '../oci/digest.ts';
import { parseRepositoryName, type RepositoryName } from '../oci/names.ts';
import type { RepositoryWriter, UploadState } from '../registry/repository.ts';
import type { Caller } from './access.ts';
import { hasBody, queryValue } from './request-parts.ts';
import { parseChunkBounds } from './range.ts';
import type { V2Request } from './v2-routes.ts';

/**
 * POST /v2/<name>/blobs/uploads/: a new session (202), a monolithic upload
 * with `?digest=` (201), or a mount with `?mount=&from=`, or `?mount=` alone
 * from any repository the caller may pull (201, or 202 with a new session
 * when the blob cannot be mounted, the mount arguments being malformed included).
 */
export async function startUpload(context: V2Request): Promise<unknown> {
  const { request, reply, name, signal, settings, caller } = context;
  const writer = await context.writer();
  const digestParam = queryValue(request.query, 'digest');
  const mountParam = queryValue(request.query, 'mount');
  if (digestParam !== undefined) {
    const digest = parseDigest(digestParam);
    const upload = await writer.startUpload(caller?.user);
    try {
      await writer.finishUpload(upload.id, digest, request.raw, parseChunkBounds(undefined, request.headers['content-length']), signal);
    } catch (error) {
      await writer.cancelUpload(upload.id).catch(() => undefined);
      throw error;
    }
    return blobCreated(reply, name, digest);
  }
  if (mountParam !== undefined) {
    // A mount that cannot be done, also for a malformed digest or source,
    // starts a plain upload (202), as the spec and Distribution do.
    const digest = parsedOrUndefined(parseDigest, mountParam);
    const from = queryValue(request.query, 'from');
    // A source the caller may not pull is treated like one without the blob:
    // a plain upload starts, and nothing tells whether the blob is there.
    const readable = (source: RepositoryName): boolean => caller === undefined || caller.may(source, 'pull');
    if (digest !== undefined && from !== undefined) {
      const source = parsedOrUndefined(parseRepositoryName, from);
      if (source !== undefined && readable(source) && (await writer.mountBlob(digest, source))) return blobCreated(reply, name, digest);
    } else if (digest !== undefined && settings.autoMount !== false && (await writer.mountBlob(digest, readable))) {
      return blobCreated(reply, name, digest);
    }
  }
  const upload = await writer.startUpload(caller?.user);
  return uploadAccepted(reply.code(202).header('oci-chunk-min-length', settings.chunkMinLength), name, upload);
}

/** GET /v2/<name>/blobs/uploads/<id>: 204 with how much the upload holds. */
export async function uploadStatus({ reply, name, params, writer, caller }: V2Request): Promise<unknown> {
  const upload = await ownedUpload(await writer(), params['id'] ?? '', caller);
  return uploadAccepted(reply.code(204), name, upload);
}

/** PATCH /v2/<name>/blobs/uploads/<id>: one chunk, which must start where the upload ends. */
export async function patchUpload({ request, reply, name, params, signal, writer, caller }: V2Request): Promise<unknown> {
  const target = await writer();
  const id = params['id'] ?? '';
  if (caller !== undefined) await ownedUpload(target, id, caller);
  const bounds = parseChunkBounds(request.headers['content-range'], request.headers['content-length']);
  const upload = await withResumeHeaders(target, name, id, () => target.appendUpload(id, request.raw, bounds, signal));
  return uploadAccepted(reply.code(202), name, upload);
}

/** PUT /v2/<name>/blobs/uploads/<id>?digest=: an optional last chunk, then the digest is verified. */
export async function finishUpload({ request, reply, name, params, signal, writer, caller }: V2Request): Promise<unknown> {
  const target = await writer();
  const id = params['id'] ?? '';
  if (caller !== undefined) await ownedUpload(target, id, caller);
  const digestParam = queryValue(request.query, 'digest');
  if (digestParam === undefined) {
    throw new RegistryError('DIGEST_INVALID', 'finishing an upload needs ?digest=<digest> of the whole blob');
  }
  const digest = parseDigest(digestParam);
  const bounds = parseChunkBounds(request.headers['content-range'], request.headers['content-length']);
  const body = hasBody(request.raw) ? request.raw : undefined;
  await withResumeHeaders(target, name, id, () => target.finishUpload(id, digest, body, bounds, signal));
  return blobCreated(reply, name, digest);
}

/** DELETE /v2/<name>/blobs/uploads/<id>: cancels the upload and drops its bytes. */
export async function cancelUpload({ reply, params, writer, caller }: V2Request): Promise<unknown> {
  const target = await writer();
  if (caller !== undefined) await ownedUpload(target, params['id'] ?? '', caller);
  await target.cancelUpload(params['id'] ?? '');
  return reply.code(204).send();
}

/**
 * The upload's state, when the caller may touch it: an upload started by a
 * signed-in user belongs to that user, and to anyone else it does not exist.
 */
async function ownedUpload(writer: RepositoryWriter, id: string, caller: Caller | undefined): Promise<UploadState> {
  const upload = await writer.uploadStatus(id);
  if (caller !== undefined && upload.owner !== undefined && upload.owner !== caller.user) {
    throw new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { id: id.slice(0, 128) } });
  }
  return upload;
}

function blobCreated(reply: FastifyReply, name: RepositoryName, digest: string): FastifyReply {
  return reply
    .code(201)
    .headers({ location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': 0 })
    .send();
}

function uploadAccepted(reply: FastifyReply, name: RepositoryName, upload: UploadState): FastifyReply {
  return reply.headers(resumeHeaders(name, upload)).header('content-length', 0).send();
}

/** Where the upload continues and what it holds: `Range: 0-<last byte>`, as Distribution writes it. */
function resumeHeaders(name: RepositoryName, upload: UploadState): Record<string, string> {
  return {
    location: `/v2/${name}/blobs/uploads/${upload.id}`,
    range: `0-${Math.max(upload.size - 1, 0)}`,
    'docker-upload-uuid': upload.id,
  };
}

/** A chunk out of order (416) tells the client where to resume. */
async function withResumeHeaders<T>(writer: RepositoryWriter, name: RepositoryName, id: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isRegistryError(error) && error.status === 416) {
      const upload = await writer.uploadStatus(id).catch(() => undefined);
      if (upload !== undefined) Object.assign(error.headers, resumeHeaders(name, upload));
    }
    throw error;
  }
}

/** What `parse` makes of `value`, or undefined when it refuses it. */
function parsedOrUndefined<T>(parse: (value: string) => T, value: string): T | undefined {
  try {
    return parse(value);
  } catch {
    return undefined;
  }
}
