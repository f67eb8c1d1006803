import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { assertError, call } from '../helpers/http.ts';
import { pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { createTestApp, registryForFile, startTestRegistry } from '../helpers/registry.ts';
import { maxPageSize, referrersPageSize } from '../../src/http/listings.ts';
import { parseRepositoryName, parseTag } from '../../src/oci/names.ts';

const registry = registryForFile();

describe('GET /v2/<name>/tags/list', () => {
  const tags = ['1.0', '1.1', '2.0', 'Latest', 'a-tag', 'latest', 'z'];
  before(async () => {
    const image = randomImage({ layers: 1 });
    for (const tag of [...tags].reverse()) await pushImage(registry.url, 'list/app', tag, image);
  });

  it('lists every tag in byte order', async () => {
    const reply = await call(registry.url, 'GET', '/v2/list/app/tags/list');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.json(), { name: 'list/app', tags: [...tags].sort() });
    assert.equal(reply.headers.get('link'), null);
  });

  it('pages with n and last, linking to the next page', async () => {
    const first = await call(registry.url, 'GET', '/v2/list/app/tags/list?n=3');
    assert.deepEqual(first.json(), { name: 'list/app', tags: ['1.0', '1.1', '2.0'] });
    assert.equal(first.headers.get('link'), '</v2/list/app/tags/list?n=3&last=2.0>; rel="next"');
    const second = await call(registry.url, 'GET', '/v2/list/app/tags/list?n=3&last=2.0');
    assert.deepEqual(second.json<{ tags: string[] }>().tags, ['Latest', 'a-tag', 'latest']);
    const last = await call(registry.url, 'GET', '/v2/list/app/tags/list?n=3&last=latest');
    assert.deepEqual(last.json<{ tags: string[] }>().tags, ['z']);
    assert.equal(last.headers.get('link'), null);
    const exact = await call(registry.url, 'GET', '/v2/list/app/tags/list?n=7');
    assert.equal(exact.json<{ tags: string[] }>().tags.length, 7);
    assert.equal(exact.headers.get('link'), null);
  });

  it('n=0 is an empty list; a bad n is 400', async () => {
    assert.deepEqual((await call(registry.url, 'GET', '/v2/list/app/tags/list?n=0')).json(), { name: 'list/app', tags: [] });
    assertError(await call(registry.url, 'GET', '/v2/list/app/tags/list?n=-1'), 400, 'UNSUPPORTED');
    assertError(await call(registry.url, 'GET', '/v2/list/app/tags/list?n=ten'), 400, 'UNSUPPORTED');
  });

  it('an unknown repository is 404 NAME_UNKNOWN', async () => {
    assertError(await call(registry.url, 'GET', '/v2/list/nothing/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('without n, a page stops at the largest page size and links on', async () => {
    const test = await createTestApp();
    try {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] }));
      const tags = Array.from({ length: maxPageSize + 5 }, (_, index) => parseTag(`t${String(index).padStart(6, '0')}`));
      const record = { digest: digestOf(bytes), mediaType: mediaTypes.ociIndex, bytes };
      await test.registry.meta.manifests.put(parseRepositoryName('many/tags'), record, { blobs: [], children: [] }, tags);
      const first = await test.app.inject({ method: 'GET', url: '/v2/many/tags/tags/list' });
      assert.equal(first.json<{ tags: string[] }>().tags.length, maxPageSize);
      const last = tags[maxPageSize - 1] as string;
      assert.equal(first.headers['link'], `</v2/many/tags/tags/list?n=${maxPageSize}&last=${last}>; rel="next"`);
      const rest = await test.app.inject({ method: 'GET', url: `/v2/many/tags/tags/list?n=${maxPageSize}&last=${last}` });
      assert.deepEqual(rest.json<{ tags: string[] }>().tags, tags.slice(maxPageSize));
      assert.equal(rest.headers['link'], undefined);
    } finally {
      await test.close();
    }
  });
});

describe('GET /v2/<name>/referrers/<digest>, many referrers', () => {
  it('pages in digest order with a Link that keeps the artifactType filter', async () => {
    const test = await createTestApp();
    try {
      const repository = parseRepositoryName('signed/app');
      const subjectBytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] }));
      const subject = digestOf(subjectBytes);
      const { manifests } = test.registry.meta;
      await manifests.put(repository, { digest: subject, mediaType: mediaTypes.ociIndex, bytes: subjectBytes }, { blobs: [], children: [] }, [parseTag('v1')]);
      const digests: string[] = [];
      for (let index = 0; index < referrersPageSize + 2; index++) {
        const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [], subject: { digest: subject }, index }));
        const record = { digest: digestOf(bytes), mediaType: mediaTypes.ociIndex, bytes, subject, artifactType: 'application/vnd.example.sig' };
        await manifests.put(repository, record, { blobs: [], children: [] }, []);
        digests.push(record.digest);
      }
      digests.sort();
      const url = `/v2/signed/app/referrers/${subject}?artifactType=application%2Fvnd.example.sig`;
      const first = await test.app.inject({ method: 'GET', url });
      const firstPage = first.json<{ manifests: { digest: string }[] }>().manifests.map((descriptor) => descriptor.digest);
      assert.deepEqual(firstPage, digests.slice(0, referrersPageSize));
      const link = /<([^>]+)>; rel="next"/.exec(String(first.headers['link']))?.[1];
      assert.equal(link, `/v2/signed/app/referrers/${subject}?artifactType=application%2Fvnd.example.sig&last=${encodeURIComponent(firstPage[referrersPageSize - 1] as string)}`);
      const second = await test.app.inject({ method: 'GET', url: link as string });
      assert.deepEqual(
        second.json<{ manifests: { digest: string }[] }>().manifests.map((descriptor) => descriptor.digest),
        digests.slice(referrersPageSize),
      );
      assert.equal(second.headers['link'], undefined);
      assert.equal(second.headers['oci-filters-applied'], 'artifactType');
    } finally {
      await test.close();
    }
  });
});

describe('GET /v2/_catalog', () => {
  it('lists repositories in order, paged with n, last and Link', async () => {
    const catalogRegistry = await startTestRegistry();
    try {
      const names = ['b/one', 'a', 'c/x/y', 'a/b', 'b'];
      const image = randomImage({ layers: 1 });
      for (const name of names) await pushImage(catalogRegistry.url, name, 'v1', image);
      const all = await call(catalogRegistry.url, 'GET', '/v2/_catalog');
      assert.deepEqual(all.json(), { repositories: [...names].sort() });
      const first = await call(catalogRegistry.url, 'GET', '/v2/_catalog?n=2');
      assert.deepEqual(first.json(), { repositories: ['a', 'a/b'] });
      assert.equal(first.headers.get('link'), '</v2/_catalog?n=2&last=a%2Fb>; rel="next"');
      const second = await call(catalogRegistry.url, 'GET', '/v2/_catalog?n=2&last=a/b');
      assert.deepEqual(second.json(), { repositories: ['b', 'b/one'] });
      const third = await call(catalogRegistry.url, 'GET', '/v2/_catalog?n=2&last=b/one');
      assert.deepEqual(third.json(), { repositories: ['c/x/y'] });
      assert.equal(third.headers.get('link'), null);
    } finally {
      await catalogRegistry.close();
    }
  });
});

describe('GET /v2/<name>/referrers/<digest>', () => {
  const subject = randomImage();
  const signature = randomImage({ layers: 1, subject: subject.manifest, artifactType: 'application/vnd.example.signature', annotations: { by: 'ci' } });
  const sbom = randomImage({ layers: 1, subject: subject.manifest, artifactType: 'application/spdx+json' });
  before(async () => {
    await pushImage(registry.url, 'ref/app', 'v1', subject);
    for (const referrer of [signature, sbom]) await pushImage(registry.url, 'ref/app', referrer.manifest.digest, referrer);
  });

  it('lists every manifest whose subject is the digest, as an OCI index', async () => {
    const reply = await call(registry.url, 'GET', `/v2/ref/app/referrers/${subject.manifest.digest}`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get('content-type'), mediaTypes.ociIndex);
    assert.equal(reply.headers.get('oci-filters-applied'), null);
    const index = reply.json<{ schemaVersion: number; mediaType: string; manifests: Record<string, unknown>[] }>();
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, mediaTypes.ociIndex);
    const expected = [signature, sbom]
      .map((referrer) => ({
        mediaType: mediaTypes.ociManifest,
        digest: referrer.manifest.digest,
        size: referrer.manifest.bytes.length,
        artifactType: referrer === signature ? 'application/vnd.example.signature' : 'application/spdx+json',
        ...(referrer === signature ? { annotations: { by: 'ci' } } : {}),
      }))
      .sort((a, b) => (a.digest < b.digest ? -1 : 1));
    assert.deepEqual(index.manifests, expected);
  });

  it('filters by artifactType and says so in OCI-Filters-Applied', async () => {
    const reply = await call(registry.url, 'GET', `/v2/ref/app/referrers/${subject.manifest.digest}?artifactType=application/spdx%2Bjson`);
    assert.equal(reply.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(
      reply.json<{ manifests: { digest: string }[] }>().manifests.map((entry) => entry.digest),
      [sbom.manifest.digest],
    );
  });

  it('an unknown subject or repository gets an empty index, a bad digest 400', async () => {
    for (const path of [`/v2/ref/app/referrers/${digestOf(Buffer.from('none'))}`, `/v2/ref/unknown/referrers/${subject.manifest.digest}`]) {
      const reply = await call(registry.url, 'GET', path);
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json(), { schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] });
    }
    assertError(await call(registry.url, 'GET', '/v2/ref/app/referrers/sha256:bad'), 400, 'DIGEST_INVALID');
  });

  it('a referrer pushed before its subject is listed', async () => {
    const later = randomImage();
    const early = randomImage({ layers: 1, subject: later.manifest, artifactType: 'application/x-early' });
    await pushImage(registry.url, 'ref/early', early.manifest.digest, early);
    const reply = await call(registry.url, 'GET', `/v2/ref/early/referrers/${later.manifest.digest}`);
    assert.equal(reply.json<{ manifests: unknown[] }>().manifests.length, 1);
    await pushManifest(registry.url, 'ref/early', 'irrelevant', early.manifest).catch(() => undefined);
  });
});
