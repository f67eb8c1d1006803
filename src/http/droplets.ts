import type { Readable } from 'node:stream';
import { RegistryError } from '../errors/registry-error.ts';
import type { Digest } from '../oci/digest.ts';
import { parseTag, type RepositoryName, type Tag } from '../oci/names.ts';
import { queryValue } from './request-parts.ts';
import { push, type V2Endpoint, type V2Request } from './v2-routes.ts';

/** Takes Cloud Foundry droplets (.tgz as staged) for the droplet repositories of one prefix. */
export interface DropletReceiver {
  /** Converts and records the droplet; `<name>:<guid>` and `<name>:latest` then pull its image. Resolves to the layer digest. */
  receive(name: RepositoryName, guid: Tag, droplet: Readable, signal?: AbortSignal): Promise<Digest>;
}

/**
 * The droplet kind's endpoint, registered beside the core ones when droplet
 * repositories are configured: POST /v2/<name>/blobs/?guid=<droplet guid>,
 * the cube registry's droplet upload. The body is the droplet .tgz; 201
 * with the layer digest (in the body, as cube answered, and in
 * Docker-Content-Digest). `receiverFor` finds the droplet source that
 * serves the name, if one does.
 */
export function dropletEndpoints(receiverFor: (name: RepositoryName) => DropletReceiver | undefined): V2Endpoint[] {
  const receiveDroplet = async ({ request, reply, name, signal }: V2Request): Promise<unknown> => {
    const receiver = receiverFor(name);
    if (receiver === undefined) {
      throw new RegistryError('UNSUPPORTED', `repository ${name} does not take droplets: only droplet repositories without a Cloud Controller do`, {
        detail: { name },
      });
    }
    const guid = queryValue(request.query, 'guid');
    if (guid === undefined || guid === '') {
      throw new RegistryError('BLOB_UPLOAD_INVALID', 'a droplet upload needs ?guid=<droplet guid>, the tag it will be pulled by');
    }
    const digest = await receiver.receive(name, parseTag(guid), request.raw, signal);
    return reply
      .code(201)
      .headers({ location: `/v2/${name}/manifests/${guid}`, 'docker-content-digest': digest, 'content-type': 'text/plain; charset=utf-8' })
      .send(digest);
  };
  return [{ label: 'droplet_upload', marker: '/blobs/', pattern: /^(?<name>.+)\/blobs\/$/, methods: { POST: push(receiveDroplet) } }];
}
