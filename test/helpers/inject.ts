import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { TestImage } from './images.ts';

/** Pushes an image's blobs and manifest through `inject`, with the given Authorization header. */
export async function injectPushImage(app: FastifyInstance, authorization: string, repository: string, tag: string, image: TestImage): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const response = await app.inject({
      method: 'POST',
      url: `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`,
      headers: { authorization, 'content-type': 'application/octet-stream' },
      payload: blob.bytes,
    });
    if (response.statusCode !== 201) throw new Error(`blob push failed: ${response.statusCode} ${response.body}`);
  }
  const response = await app.inject({
    method: 'PUT',
    url: `/v2/${repository}/manifests/${tag}`,
    headers: { authorization, 'content-type': image.manifest.mediaType },
    payload: image.manifest.bytes,
  });
  if (response.statusCode !== 201) throw new Error(`manifest push failed: ${response.statusCode} ${response.body}`);
}

/** The first error code of an OCI error body, or undefined. */
export function errorCode(response: LightMyRequestResponse): string | undefined {
  if (response.body === '') return undefined;
  try {
    return (JSON.parse(response.body) as { errors?: { code: string }[] }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}
