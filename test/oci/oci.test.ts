import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isRegistryError } from '../../src/errors/registry-error.ts';
import { parseAccept } from '../../src/oci/accept.ts';
import { digestOf, parseDigest } from '../../src/oci/digest.ts';
import { parseManifest } from '../../src/oci/manifest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { parseReference, parseRepositoryName, parseTag } from '../../src/oci/names.ts';

function codeOf(work: () => unknown): string | undefined {
  try {
    work();
    return undefined;
  } catch (error) {
    return isRegistryError(error) ? error.code : 'not a RegistryError';
  }
}

describe('repository names follow the spec grammar', () => {
  const cases: [string, boolean][] = [
    ['library/ubuntu', true],
    ['a', true],
    ['a/b/c/d', true],
    ['my-app', true],
    ['my--app', true],
    ['my__app', true],
    ['my.app_1', true],
    [`a${'/b'.repeat(120)}`, true],
    ['Upper/case', false],
    ['../etc/passwd', false],
    ['a/../b', false],
    ['a//b', false],
    ['/a', false],
    ['a/', false],
    ['-a', false],
    ['a-', false],
    ['a___b', false],
    ['', false],
    ['a'.repeat(256), false],
    ['a'.repeat(255), true],
  ];
  for (const [name, valid] of cases) {
    it(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 20)}…(${name.length})` : name)} is ${valid ? 'valid' : 'NAME_INVALID'}`, () => {
      assert.equal(
        codeOf(() => parseRepositoryName(name)),
        valid ? undefined : 'NAME_INVALID',
      );
    });
  }
});

describe('tags and references', () => {
  it('accepts tags up to 128 characters not starting with . or -', () => {
    assert.equal(
      codeOf(() => parseTag('v1.0_rc-2')),
      undefined,
    );
    assert.equal(
      codeOf(() => parseTag('_x')),
      undefined,
    );
    assert.equal(
      codeOf(() => parseTag('a'.repeat(128))),
      undefined,
    );
    assert.equal(
      codeOf(() => parseTag('a'.repeat(129))),
      'TAG_INVALID',
    );
    assert.equal(
      codeOf(() => parseTag('.hidden')),
      'TAG_INVALID',
    );
    assert.equal(
      codeOf(() => parseTag('-x')),
      'TAG_INVALID',
    );
  });
  it('tells digests from tags', () => {
    const digest = digestOf(Buffer.from('x'));
    assert.deepEqual(parseReference(digest), { kind: 'digest', digest });
    assert.deepEqual(parseReference('latest'), { kind: 'tag', tag: 'latest' });
    assert.equal(
      codeOf(() => parseReference('sha256:abc')),
      'MANIFEST_INVALID',
    );
    assert.equal(
      codeOf(() => parseReference('bad tag')),
      'MANIFEST_INVALID',
    );
  });
});

describe('digests', () => {
  it('accepts sha256 and sha512 of the right length only', () => {
    assert.equal(
      codeOf(() => parseDigest(digestOf(Buffer.from('a'), 'sha512'))),
      undefined,
    );
    assert.equal(
      codeOf(() => parseDigest(`sha256:${'a'.repeat(63)}`)),
      'DIGEST_INVALID',
    );
    assert.equal(
      codeOf(() => parseDigest(`sha256:${'A'.repeat(64)}`)),
      'DIGEST_INVALID',
    );
    assert.equal(
      codeOf(() => parseDigest(`md5:${'a'.repeat(32)}`)),
      'DIGEST_INVALID',
    );
    assert.equal(
      codeOf(() => parseDigest('nonsense')),
      'DIGEST_INVALID',
    );
  });
  it('computes the sha256 of known bytes', () => {
    assert.equal(digestOf(Buffer.from('')), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('manifest parsing', () => {
  const config = { mediaType: mediaTypes.ociConfig, digest: digestOf(Buffer.from('c')), size: 1 };
  const layer = { mediaType: mediaTypes.ociLayerGzip, digest: digestOf(Buffer.from('l')), size: 1 };
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value));

  it('extracts blobs, subject, artifact type and annotations of an image manifest', () => {
    const subject = { mediaType: mediaTypes.ociManifest, digest: digestOf(Buffer.from('s')), size: 10 };
    const parsed = parseManifest(
      encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [layer, layer], subject, annotations: { a: 'b' } }),
      mediaTypes.ociManifest,
    );
    assert.deepEqual(parsed.blobs, [config.digest, layer.digest]);
    assert.equal(parsed.subject, subject.digest);
    assert.equal(parsed.artifactType, mediaTypes.ociConfig);
    assert.deepEqual(parsed.annotations, { a: 'b' });
  });
  it('skips foreign layers and prefers an explicit artifactType', () => {
    const foreign = { mediaType: mediaTypes.dockerForeignLayer, digest: digestOf(Buffer.from('f')), size: 1, urls: ['https://x'] };
    const parsed = parseManifest(encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, artifactType: 'application/x-sbom', config, layers: [foreign] }), undefined);
    assert.deepEqual(parsed.blobs, [config.digest]);
    assert.equal(parsed.artifactType, 'application/x-sbom');
  });
  it('lists the children of an index', () => {
    const child = { mediaType: mediaTypes.ociManifest, digest: digestOf(Buffer.from('m')), size: 5, platform: { os: 'linux', architecture: 'arm64' } };
    const parsed = parseManifest(encode({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [child] }), mediaTypes.ociIndex);
    assert.deepEqual(parsed.children, [child.digest]);
    assert.equal(parsed.mediaType, mediaTypes.ociIndex);
  });
  const invalid: [string, Buffer, string | undefined][] = [
    ['not JSON', Buffer.from('{'), undefined],
    ['not UTF-8', Buffer.from([0xff, 0xfe]), undefined],
    ['an array', encode([]), undefined],
    ['schemaVersion 1', encode({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), undefined],
    ['a schema 1 content type', encode({ schemaVersion: 2, config, layers: [] }), mediaTypes.dockerSchema1Signed],
    ['schemaVersion 3', encode({ schemaVersion: 3, config, layers: [] }), undefined],
    ['layers not an array', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: {} }), undefined],
    ['a descriptor without size', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { ...config, size: undefined }, layers: [] }), undefined],
    ['a negative size', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { ...config, size: -1 }, layers: [] }), undefined],
    ['a bad digest', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: { ...config, digest: 'sha256:zz' }, layers: [] }), undefined],
    ['mismatched Content-Type', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [] }), mediaTypes.dockerManifest],
    ['an unknown media type', encode({ schemaVersion: 2, mediaType: 'application/x-unknown', config, layers: [] }), undefined],
    ['a Docker manifest without mediaType', encode({ schemaVersion: 2, config, layers: [] }), mediaTypes.dockerManifest],
    ['an index with layers', encode({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [], layers: [] }), undefined],
    ['non-string annotations', encode({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [], annotations: { a: 1 } }), undefined],
  ];
  for (const [label, bytes, contentType] of invalid) {
    it(`refuses ${label} with MANIFEST_INVALID`, () => {
      assert.equal(
        codeOf(() => parseManifest(bytes, contentType)),
        'MANIFEST_INVALID',
      );
    });
  }
});

describe('Accept negotiation', () => {
  it('accepts everything without a header or with a wildcard', () => {
    assert.equal(parseAccept(undefined).accepts(mediaTypes.ociIndex), true);
    assert.equal(parseAccept('*/*').accepts(mediaTypes.ociIndex), true);
  });
  it('reads comma-joined and repeated headers, ignoring parameters and q=0', () => {
    const accept = parseAccept([`${mediaTypes.dockerManifest}; q=0.9, ${mediaTypes.ociManifest}`, `${mediaTypes.ociIndex};q=0`]);
    assert.equal(accept.accepts(mediaTypes.dockerManifest), true);
    assert.equal(accept.accepts(mediaTypes.ociManifest), true);
    assert.equal(accept.accepts(mediaTypes.ociIndex), false);
  });
});
