import { RegistryError } from '../errors/registry-error.ts';
import { parseTag } from '../oci/names.ts';
import { queryValue } from './request-parts.ts';
import type { V2Request } from './v2-routes.ts';

/**
 * POST /v2/<name>/blobs/?guid=<droplet guid>, the cube registry's droplet
 * upload: the body is the droplet .tgz; 201 with the layer digest (in the
 * body, as cube answered, and in Docker-Content-Digest).
 */
export async function receiveDroplet({ request, reply, name, signal, repository }: V2Request): Promise<unknown> {
  const receiver = (await repository()).droplets;
  if (receiver === undefined) {
    throw new RegistryError('UNSUPPORTED', `repository ${name} does not take droplets: only droplet repositories without a Cloud Controller do`, {
      detail: { name },
    });
  }
  const guid = queryValue(request.query, 'guid');
  if (guid === undefined || guid === '') {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'a droplet upload needs ?guid=<droplet guid>, the tag it will be pulled by');
  }
  const digest = await receiver.receive(parseTag(guid), request.raw, signal);
  return reply
    .code(201)
    .headers({ location: `/v2/${name}/manifests/${guid}`, 'docker-content-digest': digest, 'content-type': 'text/plain; charset=utf-8' })
    .send(digest);
}
