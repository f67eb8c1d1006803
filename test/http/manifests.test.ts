import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { assertError, call, type Reply } from '../helpers/http.ts';
import { blobOf, imageIndex, manifestOf, pushBlob, pushImage, pushManifest, randomImage, type TestBlob, type TestManifest } from '../helpers/images.ts';
import { registryForFile } from '../helpers/registry.ts';

const registry = registryForFile();

function put(name: string, reference: string, manifest: TestManifest, contentType = manifest.mediaType) {
  return call(registry.url, 'PUT', `/v2/${name}/manifests/${reference}`, { headers: { 'content-type': contentType }, body: manifest.bytes });
}

describe('PUT, GET and HEAD /v2/<name>/manifests/<reference>', () => {
  const image = randomImage();
  before(async () => {
    for (const blob of [image.config, ...image.layers]) await pushBlob(registry.url, 'man/app', blob);
  });

  it('PUT by tag: 201 with Location and the sha256 digest', async () => {
    const reply = await put('man/app', 'v1', image.manifest);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('location'), `/v2/man/app/manifests/${image.manifest.digest}`);
    assert.equal(reply.headers.get('docker-content-digest'), image.manifest.digest);
    assert.equal(reply.headers.get('oci-subject'), null);
  });

  for (const reference of ['v1', image.manifest.digest]) {
    it(`GET by ${reference === 'v1' ? 'tag' : 'digest'} returns the exact bytes with type, length and digest`, async () => {
      const reply = await call(registry.url, 'GET', `/v2/man/app/manifests/${reference}`, { headers: { accept: mediaTypes.ociManifest } });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.body, image.manifest.bytes);
      assert.equal(reply.headers.get('content-type'), mediaTypes.ociManifest);
      assert.equal(reply.headers.get('content-length'), String(image.manifest.bytes.length));
      assert.equal(reply.headers.get('docker-content-digest'), image.manifest.digest);
    });
    it(`HEAD by ${reference === 'v1' ? 'tag' : 'digest'} returns the headers only`, async () => {
      const reply = await call(registry.url, 'HEAD', `/v2/man/app/manifests/${reference}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.body.length, 0);
      assert.equal(reply.headers.get('content-length'), String(image.manifest.bytes.length));
      assert.equal(reply.headers.get('docker-content-digest'), image.manifest.digest);
    });
    for (const method of ['GET', 'HEAD']) {
      it(`${method} by ${reference === 'v1' ? 'tag' : 'digest'} with a matching If-None-Match is 304 with ETag and digest, no body`, async () => {
        const etag = `"${image.manifest.digest}"`;
        for (const header of [etag, `W/${etag}`, '*', `"sha256:${'0'.repeat(64)}", ${etag}`]) {
          const reply = await call(registry.url, method, `/v2/man/app/manifests/${reference}`, { headers: { 'if-none-match': header, accept: mediaTypes.ociManifest } });
          assert.equal(reply.status, 304, `${header}: ${reply.text}`);
          assert.equal(reply.body.length, 0);
          assert.equal(reply.headers.get('etag'), etag);
          assert.equal(reply.headers.get('docker-content-digest'), image.manifest.digest);
        }
        const changed = await call(registry.url, method, `/v2/man/app/manifests/${reference}`, { headers: { 'if-none-match': `"sha256:${'0'.repeat(64)}"` } });
        assert.equal(changed.status, 200);
        assert.equal(changed.headers.get('etag'), etag);
        if (method === 'GET') assert.deepEqual(changed.body, image.manifest.bytes);
      });
    }
  }

  it('keeps the pushed bytes exactly, whitespace and key order included', async () => {
    const body = JSON.parse(image.manifest.bytes.toString()) as Record<string, unknown>;
    const pretty = Buffer.from(`${JSON.stringify({ layers: body['layers'], ...body }, null, 3)}\n`);
    const reply = await call(registry.url, 'PUT', '/v2/man/app/manifests/pretty', { headers: { 'content-type': mediaTypes.ociManifest }, body: pretty });
    assert.equal(reply.headers.get('docker-content-digest'), digestOf(pretty));
    assert.deepEqual((await call(registry.url, 'GET', '/v2/man/app/manifests/pretty')).body, pretty);
  });

  it('PUT by digest checks the digest: 400 DIGEST_INVALID when it does not match', async () => {
    assert.equal((await put('man/app', image.manifest.digest, image.manifest)).status, 201);
    assertError(await put('man/app', digestOf(Buffer.from('other')), image.manifest), 400, 'DIGEST_INVALID');
    const sha512 = digestOf(image.manifest.bytes, 'sha512');
    const reply = await put('man/app', sha512, image.manifest);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('docker-content-digest'), sha512);
  });

  it('moves a tag to the manifest pushed last', async () => {
    const next = randomImage();
    await pushImage(registry.url, 'man/app', 'moving', image);
    await pushImage(registry.url, 'man/app', 'moving', next);
    assert.equal((await call(registry.url, 'HEAD', '/v2/man/app/manifests/moving')).headers.get('docker-content-digest'), next.manifest.digest);
  });

  it('PUT by digest with ?tag= tags it several times at once', async () => {
    const reply = await call(registry.url, 'PUT', `/v2/man/app/manifests/${image.manifest.digest}?tag=a&tag=b`, {
      headers: { 'content-type': mediaTypes.ociManifest },
      body: image.manifest.bytes,
    });
    assert.equal(reply.status, 201);
    for (const tag of ['a', 'b']) {
      assert.equal((await call(registry.url, 'HEAD', `/v2/man/app/manifests/${tag}`)).headers.get('docker-content-digest'), image.manifest.digest);
    }
    assertError(await call(registry.url, 'PUT', `/v2/man/app/manifests/${image.manifest.digest}?tag=.bad`, { body: image.manifest.bytes }), 400, 'TAG_INVALID');
  });

  it('an unknown manifest is 404 MANIFEST_UNKNOWN, also for a reference that is neither tag nor digest; writing one is 400', async () => {
    assertError(await call(registry.url, 'GET', '/v2/man/app/manifests/nope'), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(registry.url, 'GET', `/v2/man/app/manifests/${digestOf(Buffer.from('x'))}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/man/nothing-here/manifests/latest'), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/man/app/manifests/sha256:nothex'), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(registry.url, 'GET', '/v2/man/app/manifests/.INVALID_MANIFEST_NAME'), 404, 'MANIFEST_UNKNOWN');
    const head = await call(registry.url, 'HEAD', '/v2/man/app/manifests/.INVALID_MANIFEST_NAME');
    assert.equal(head.status, 404);
    assertError(await call(registry.url, 'PUT', '/v2/man/app/manifests/.INVALID_MANIFEST_NAME', { body: image.manifest.bytes }), 400, 'MANIFEST_INVALID');
  });
});

describe('manifest kinds', () => {
  it('stores Docker schema 2 manifests and manifest lists', async () => {
    const amd = randomImage({ docker: true });
    const arm = randomImage({ docker: true });
    await pushImage(registry.url, 'kinds/docker', 'amd64', amd);
    await pushImage(registry.url, 'kinds/docker', 'arm64', arm);
    const list = imageIndex(
      [
        { image: amd, os: 'linux', architecture: 'amd64' },
        { image: arm, os: 'linux', architecture: 'arm64' },
      ],
      true,
    );
    assert.equal((await put('kinds/docker', 'multi', list)).status, 201);
    const reply = await call(registry.url, 'GET', '/v2/kinds/docker/manifests/multi', { headers: { accept: mediaTypes.dockerManifestList } });
    assert.equal(reply.headers.get('content-type'), mediaTypes.dockerManifestList);
    assert.deepEqual(reply.body, list.bytes);
  });

  it('stores artifacts with any config media type and an artifactType', async () => {
    const empty = blobOf(Buffer.from('{}'), mediaTypes.ociEmpty);
    const payload = blobOf(Buffer.from('sbom contents'), 'application/spdx+json');
    await pushBlob(registry.url, 'kinds/artifact', empty);
    await pushBlob(registry.url, 'kinds/artifact', payload);
    const artifact = manifestOf(
      {
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        artifactType: 'application/spdx+json',
        config: { mediaType: mediaTypes.ociEmpty, digest: empty.digest, size: 2 },
        layers: [{ mediaType: 'application/spdx+json', digest: payload.digest, size: payload.bytes.length }],
      },
      mediaTypes.ociManifest,
    );
    assert.equal((await put('kinds/artifact', 'sbom', artifact)).status, 201);
    const custom = blobOf(Buffer.from('{"tool":"x"}'), 'application/vnd.example.config+json');
    await pushBlob(registry.url, 'kinds/artifact', custom);
    const withConfig = manifestOf(
      { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { mediaType: custom.mediaType, digest: custom.digest, size: custom.bytes.length }, layers: [] },
      mediaTypes.ociManifest,
    );
    assert.equal((await put('kinds/artifact', 'custom', withConfig)).status, 201);
  });

  it('every referenced blob and child must be in the repository: 400 with one MANIFEST_BLOB_UNKNOWN per missing digest', async () => {
    const image = randomImage({ layers: 3 });
    await pushBlob(registry.url, 'kinds/missing', image.config);
    await pushBlob(registry.url, 'kinds/missing', image.layers[1] as TestBlob);
    const unknown = (reply: Reply) => reply.json<{ errors: { code: string; detail: { digest: string } }[] }>().errors.map((error) => [error.code, error.detail.digest]);
    const reply = await put('kinds/missing', 'v1', image.manifest);
    assertError(reply, 400, 'MANIFEST_BLOB_UNKNOWN');
    const missingLayers = [image.layers[0], image.layers[2]].map((layer) => ['MANIFEST_BLOB_UNKNOWN', layer?.digest]);
    assert.deepEqual(unknown(reply), missingLayers);
    // Pushed to another repository is not enough.
    await pushImage(registry.url, 'kinds/elsewhere', 'v1', image);
    assert.deepEqual(unknown(await put('kinds/missing', 'v1', image.manifest)), missingLayers);
    const other = randomImage();
    const index = imageIndex([
      { image, os: 'linux', architecture: 'amd64' },
      { image: other, os: 'linux', architecture: 'arm64' },
    ]);
    const indexReply = await put('kinds/missing', 'index', index);
    assertError(indexReply, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.deepEqual(
      unknown(indexReply),
      [image.manifest.digest, other.manifest.digest].map((digest) => ['MANIFEST_BLOB_UNKNOWN', digest]),
    );
    assertError(await call(registry.url, 'GET', '/v2/kinds/missing/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
  });

  it('a subject need not exist, and its digest comes back in OCI-Subject', async () => {
    const subject = randomImage().manifest;
    const referrer = randomImage({ layers: 1, subject, artifactType: 'application/x-signature' });
    for (const blob of [referrer.config, ...referrer.layers]) await pushBlob(registry.url, 'kinds/subject', blob);
    const reply = await put('kinds/subject', referrer.manifest.digest, referrer.manifest);
    assert.equal(reply.status, 201);
    assert.equal(reply.headers.get('oci-subject'), subject.digest);
  });

  const refusals: [string, Buffer, string][] = [
    ['malformed JSON', Buffer.from('{"schemaVersion": 2,'), mediaTypes.ociManifest],
    ['a schema 1 manifest', Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [], history: [] })), mediaTypes.dockerSchema1Signed],
    ['a bad descriptor', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { digest: 'x' }, layers: [] })), mediaTypes.ociManifest],
    ['an empty body', Buffer.alloc(0), mediaTypes.ociManifest],
  ];
  for (const [label, body, contentType] of refusals) {
    it(`refuses ${label} with 400 MANIFEST_INVALID`, async () => {
      assertError(await call(registry.url, 'PUT', '/v2/kinds/bad/manifests/v1', { headers: { 'content-type': contentType }, body }), 400, 'MANIFEST_INVALID');
    });
  }

  it('refuses manifests over 4 MiB with 413 and accepts one just under', async () => {
    const image = randomImage({ layers: 0 });
    await pushBlob(registry.url, 'kinds/big', image.config);
    const base = JSON.parse(image.manifest.bytes.toString()) as Record<string, unknown>;
    const sized = (size: number) => {
      const skeleton = Buffer.from(JSON.stringify({ ...base, annotations: { pad: '' } })).length;
      return Buffer.from(JSON.stringify({ ...base, annotations: { pad: 'x'.repeat(size - skeleton) } }));
    };
    const limit = 4 * 1024 * 1024;
    const fits = sized(limit);
    assert.equal(fits.length, limit);
    assert.equal((await call(registry.url, 'PUT', '/v2/kinds/big/manifests/fits', { headers: { 'content-type': mediaTypes.ociManifest }, body: fits })).status, 201);
    const reply = await call(registry.url, 'PUT', '/v2/kinds/big/manifests/toobig', { headers: { 'content-type': mediaTypes.ociManifest }, body: sized(limit + 1) });
    assertError(reply, 413, 'MANIFEST_INVALID');
    assertError(await call(registry.url, 'GET', '/v2/kinds/big/manifests/toobig'), 404, 'MANIFEST_UNKNOWN');
  });
});

describe('Accept negotiation', () => {
  const amd = randomImage();
  const arm = randomImage();
  const index = imageIndex([
    { image: arm, os: 'linux', architecture: 'arm64' },
    { image: amd, os: 'linux', architecture: 'amd64' },
  ]);
  before(async () => {
    await pushImage(registry.url, 'neg/app', 'amd', amd);
    await pushImage(registry.url, 'neg/app', 'arm', arm);
    await pushManifest(registry.url, 'neg/app', 'multi', index);
  });

  it('serves the stored type to a client that accepts it, or anything', async () => {
    for (const accept of [mediaTypes.ociIndex, `${mediaTypes.ociManifest}, ${mediaTypes.ociIndex}`, '*/*']) {
      const reply = await call(registry.url, 'GET', '/v2/neg/app/manifests/multi', { headers: { accept } });
      assert.equal(reply.headers.get('docker-content-digest'), index.digest, accept);
    }
  });

  it('a tag holding an index, asked for by a client without index support, serves linux/amd64', async () => {
    const reply = await call(registry.url, 'GET', '/v2/neg/app/manifests/multi', { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers.get('docker-content-digest'), amd.manifest.digest);
    assert.deepEqual(reply.body, amd.manifest.bytes);
  });

  it('a type the client does not accept is 404 MANIFEST_UNKNOWN', async () => {
    assertError(await call(registry.url, 'GET', '/v2/neg/app/manifests/amd', { headers: { accept: mediaTypes.dockerManifest } }), 404, 'MANIFEST_UNKNOWN');
  });

  it('a digest pins the content: served as stored whatever Accept says', async () => {
    const reply = await call(registry.url, 'GET', `/v2/neg/app/manifests/${index.digest}`, { headers: { accept: mediaTypes.dockerManifest } });
    assert.equal(reply.headers.get('docker-content-digest'), index.digest);
  });
});

describe('DELETE /v2/<name>/manifests/<reference>', () => {
  it('by tag removes only that tag', async () => {
    const image = randomImage();
    await pushImage(registry.url, 'del/man', 'keep', image);
    await pushImage(registry.url, 'del/man', 'drop', image);
    assert.equal((await call(registry.url, 'DELETE', '/v2/del/man/manifests/drop')).status, 202);
    assertError(await call(registry.url, 'GET', '/v2/del/man/manifests/drop'), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await call(registry.url, 'GET', '/v2/del/man/manifests/keep')).status, 200);
    assert.equal((await call(registry.url, 'GET', `/v2/del/man/manifests/${image.manifest.digest}`)).status, 200);
  });

  it('by digest removes the manifest and every tag pointing at it', async () => {
    const image = randomImage();
    await pushImage(registry.url, 'del/all', 'one', image);
    await pushImage(registry.url, 'del/all', 'two', image);
    assert.equal((await call(registry.url, 'DELETE', `/v2/del/all/manifests/${image.manifest.digest}`)).status, 202);
    for (const reference of ['one', 'two', image.manifest.digest]) {
      assertError(await call(registry.url, 'GET', `/v2/del/all/manifests/${reference}`), 404, 'MANIFEST_UNKNOWN');
    }
    assert.deepEqual((await call(registry.url, 'GET', '/v2/del/all/tags/list')).json(), { name: 'del/all', tags: [] });
    assertError(await call(registry.url, 'DELETE', `/v2/del/all/manifests/${image.manifest.digest}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(registry.url, 'DELETE', '/v2/del/all/manifests/never'), 404, 'MANIFEST_UNKNOWN');
  });
});
