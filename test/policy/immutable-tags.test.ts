import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runPolicyCases, type PolicyCase } from './cases.ts';

const [a, b] = [randomImage(), randomImage()];

const put = (registry: TestRegistry, repository: string, reference: string, image: TestImage, query = '') =>
  call(registry.url, 'PUT', `/v2/${repository}/manifests/${reference}${query}`, { body: image.manifest.bytes, headers: { 'content-type': image.manifest.mediaType } });
const remove = (registry: TestRegistry, repository: string, reference: string) => call(registry.url, 'DELETE', `/v2/${repository}/manifests/${reference}`);

const rule = /immutableTags\[0\] \(repositories prod\/\*\*; tags v\*, stable\)/;

// Steps in order against one registry; a and b have all their blobs in every repository used.
const cases: PolicyCase[] = [
  { step: 'a first push of an immutable tag', request: (r) => put(r, 'prod/app', 'v1', a), status: 201 },
  { step: 'the same manifest again', request: (r) => put(r, 'prod/app', 'v1', a), status: 201 },
  {
    step: 'moving it to another manifest',
    request: (r) => put(r, 'prod/app', 'v1', b),
    status: 403,
    message: /tag v1 is immutable \(immutableTags\[0\].*\): it names sha256:\w+ and cannot be moved/,
  },
  { step: 'moving it as an extra ?tag=', request: (r) => put(r, 'prod/app', b.manifest.digest, b, '?tag=v1'), status: 403, message: rule },
  { step: 'a tag the rule does not name moves freely', request: (r) => put(r, 'prod/app', 'latest', b), status: 201 },
  { step: 'and back', request: (r) => put(r, 'prod/app', 'latest', a), status: 201 },
  { step: 'deleting the immutable tag', request: (r) => remove(r, 'prod/app', 'v1'), status: 403, message: /tag v1 is immutable .* and cannot be deleted/ },
  { step: 'deleting the manifest it names', request: (r) => remove(r, 'prod/app', a.manifest.digest), status: 403, message: /is tagged v1, which is immutable/ },
  { step: 'deleting a manifest no immutable tag names', request: (r) => remove(r, 'prod/app', b.manifest.digest), status: 202 },
  { step: 'an exact tag in the rule', request: (r) => put(r, 'prod/app', 'stable', a), status: 201 },
  { step: 'moving the exact tag', request: (r) => put(r, 'prod/app', 'stable', b), status: 403, message: rule },
  { step: 'other repositories are not ruled', request: (r) => put(r, 'dev/app', 'v1', a), status: 201 },
  { step: 'where tags move', request: (r) => put(r, 'dev/app', 'v1', b), status: 201 },
  { step: 'a nested repository of the rule', request: (r) => put(r, 'prod/team/app', 'v1', a), status: 201 },
  { step: 'is ruled too', request: (r) => put(r, 'prod/team/app', 'v1', b), status: 403, message: rule },
];

describe('immutable tags', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ 'gc.interval': 0, immutableTags: [{ repositories: ['prod/**'], tags: ['v*', 'stable'] }] });
    for (const repository of ['prod/app', 'dev/app', 'prod/team/app', 'prod/race']) {
      for (const image of [a, b]) await pushImage(registry.url, repository, `seed-${image === a ? 'a' : 'b'}`, image);
    }
  });
  after(() => registry.close());

  runPolicyCases(cases, () => registry);

  it('lets exactly one of several racing pushes create the tag', async () => {
    const images = Array.from({ length: 5 }, () => randomImage({ layers: 1 }));
    for (const image of images) await pushImage(registry.url, 'prod/race', image.manifest.digest, image);
    const replies = await Promise.all(images.map((image) => put(registry, 'prod/race', 'v9', image)));
    assert.deepEqual(replies.map((reply) => reply.status).sort(), [201, 403, 403, 403, 403]);
    const winner = images[replies.findIndex((reply) => reply.status === 201)];
    const current = await call(registry.url, 'GET', '/v2/prod/race/manifests/v9', { headers: { accept: winner?.manifest.mediaType ?? '' } });
    assert.equal(current.headers.get('docker-content-digest'), winner?.manifest.digest);
  });
});
