import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { assertError, call } from '../helpers/http.ts';
import { randomImage, type TestImage } from '../helpers/images.ts';

/** What every kind is asked to serve: one image, tagged three times, and a signature naming it. */
export interface SharedFixture {
  image: TestImage;
  tags: readonly string[];
  referrer: TestImage;
  artifactType: string;
}

export function sharedFixture(): SharedFixture {
  const image = randomImage({ layers: 2, layerSize: 4096 });
  const artifactType = 'application/vnd.example.signature.v1';
  return { image, tags: ['a', 'b', 'c'], referrer: randomImage({ layers: 1, subject: image.manifest, artifactType }), artifactType };
}

/** How a kind serves referrers: those of the shared fixture, or (said here, with the reason) never any. */
export type ReferrersSupport = { kind: 'listed'; subject: Digest; digest: Digest; artifactType: string } | { kind: 'none'; because: string };

/** A running registry whose `name` repository, of the kind under test, holds the fixture. */
export interface ReadFixture {
  url: string;
  name: string;
  /** Every tag of the repository, in byte order (at least three, for paging). */
  tags: readonly string[];
  /** What `tag` serves. */
  tag: string;
  manifest: { digest: Digest; mediaType: string; bytes: Buffer };
  /** A blob the manifest names, with its bytes. */
  blob: { digest: Digest; bytes: Buffer };
  referrers: ReferrersSupport;
  /** A name routed to this kind that holds nothing. */
  unknownName: string;
  /**
   * What a manifest of `unknownName` answers: NAME_UNKNOWN, or (said here,
   * with the reason) MANIFEST_UNKNOWN where the kind does not tell a
   * missing repository from a missing manifest.
   */
  unknownNameManifest: { code: 'NAME_UNKNOWN' } | { code: 'MANIFEST_UNKNOWN'; because: string };
  close(): Promise<void>;
}

/**
 * The read side of the Distribution protocol, the same for every kind of
 * repository (hosted, proxy, archive, droplet): one suite, run with a
 * factory per kind. Where a kind differs, the factory says so
 * (`referrers.kind === 'none'`), and the suite checks that it does.
 */
export function runReadContract(kind: string, open: () => Promise<ReadFixture>, options: { skip?: string | false } = {}): void {
  describe(`read contract: ${kind}`, { skip: options.skip ?? false }, () => {
    let f: ReadFixture;
    before(async () => {
      f = await open();
    });
    after(() => f?.close());

    const get = (path: string, headers: Record<string, string> = {}) => call(f.url, 'GET', path, { headers });
    const accept = () => ({ accept: [mediaTypes.ociManifest, mediaTypes.ociIndex, mediaTypes.dockerManifest, mediaTypes.dockerManifestList].join(', ') });

    it('serves the manifest by tag and by digest, byte for byte, with its digest and media type', async () => {
      for (const reference of [f.tag, f.manifest.digest]) {
        const reply = await get(`/v2/${f.name}/manifests/${reference}`, accept());
        assert.equal(reply.status, 200, `${reference}: ${reply.text.slice(0, 200)}`);
        assert.equal(reply.headers.get('content-type'), f.manifest.mediaType);
        assert.equal(reply.headers.get('docker-content-digest'), f.manifest.digest);
        assert.equal(Number(reply.headers.get('content-length')), f.manifest.bytes.length);
        assert.ok(reply.body.equals(f.manifest.bytes), `${reference}: the exact bytes`);
        assert.equal(digestOf(reply.body), f.manifest.digest);
      }
    });

    it('answers HEAD of a manifest with the headers of GET and no body', async () => {
      for (const reference of [f.tag, f.manifest.digest]) {
        const reply = await call(f.url, 'HEAD', `/v2/${f.name}/manifests/${reference}`, { headers: accept() });
        assert.equal(reply.status, 200);
        assert.equal(reply.headers.get('docker-content-digest'), f.manifest.digest);
        assert.equal(reply.headers.get('content-type'), f.manifest.mediaType);
        assert.equal(Number(reply.headers.get('content-length')), f.manifest.bytes.length);
        assert.equal(reply.body.length, 0);
      }
    });

    it('serves a blob whole, and HEAD with its size', async () => {
      const whole = await get(`/v2/${f.name}/blobs/${f.blob.digest}`);
      assert.equal(whole.status, 200);
      assert.ok(whole.body.equals(f.blob.bytes));
      assert.equal(whole.headers.get('docker-content-digest'), f.blob.digest);
      const head = await call(f.url, 'HEAD', `/v2/${f.name}/blobs/${f.blob.digest}`);
      assert.equal(head.status, 200);
      assert.equal(Number(head.headers.get('content-length')), f.blob.bytes.length);
      assert.equal(head.body.length, 0);
    });

    it('serves byte ranges of a blob: 206 with Content-Range, 416 past the end', async () => {
      const size = f.blob.bytes.length;
      const cases: [string, number, number][] = [
        ['bytes=0-0', 0, 0],
        ['bytes=1-10', 1, 10],
        [`bytes=${size - 5}-`, size - 5, size - 1],
        ['bytes=-3', size - 3, size - 1],
      ];
      for (const [range, start, end] of cases) {
        const reply = await get(`/v2/${f.name}/blobs/${f.blob.digest}`, { range });
        assert.equal(reply.status, 206, range);
        assert.equal(reply.headers.get('content-range'), `bytes ${start}-${end}/${size}`, range);
        assert.ok(reply.body.equals(f.blob.bytes.subarray(start, end + 1)), `${range}: the bytes of the range`);
      }
      const past = await get(`/v2/${f.name}/blobs/${f.blob.digest}`, { range: `bytes=${size}-` });
      assert.equal(past.status, 416);
    });

    it('lists tags in order and pages them with n and last, leading on with Link', async () => {
      const all = await get(`/v2/${f.name}/tags/list`);
      assert.equal(all.status, 200);
      assert.deepEqual(all.json(), { name: f.name, tags: [...f.tags] });
      assert.equal(all.headers.get('link'), null);
      const [first, second, ...rest] = f.tags;
      const page = await get(`/v2/${f.name}/tags/list?n=2`);
      assert.deepEqual(page.json(), { name: f.name, tags: [first, second] });
      assert.equal(page.headers.get('link'), `</v2/${f.name}/tags/list?n=2&last=${second}>; rel="next"`);
      const next = await get(`/v2/${f.name}/tags/list?n=${rest.length}&last=${second}`);
      assert.deepEqual(next.json(), { name: f.name, tags: rest });
      assert.equal(next.headers.get('link'), null, 'the last page leads nowhere');
      const beyond = await get(`/v2/${f.name}/tags/list?n=2&last=${f.tags[f.tags.length - 1]}`);
      assert.deepEqual(beyond.json(), { name: f.name, tags: [] });
    });

    it('lists referrers as an index (or, for kinds that have none, says so with an empty index)', async () => {
      const subject = f.referrers.kind === 'listed' ? f.referrers.subject : f.manifest.digest;
      const reply = await get(`/v2/${f.name}/referrers/${subject}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers.get('content-type'), mediaTypes.ociIndex);
      const index = reply.json<{ schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType?: string }[] }>();
      assert.equal(index.schemaVersion, 2);
      if (f.referrers.kind === 'none') {
        assert.deepEqual(index.manifests, [], `no referrers: ${f.referrers.because}`);
        return;
      }
      const { digest, artifactType } = f.referrers;
      assert.deepEqual(
        index.manifests.map((entry) => [entry.digest, entry.artifactType]),
        [[digest, artifactType]],
      );
      const filtered = await get(`/v2/${f.name}/referrers/${subject}?artifactType=${encodeURIComponent('application/vnd.example.other')}`);
      assert.deepEqual(filtered.json<{ manifests: unknown[] }>().manifests, []);
      assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    });

    it('answers what it does not hold with the OCI error codes', async () => {
      const absent = digestOf(Buffer.from(`absent ${kind}`));
      assertError(await get(`/v2/${f.name}/manifests/no-such-tag`, accept()), 404, 'MANIFEST_UNKNOWN');
      assertError(await get(`/v2/${f.name}/manifests/${absent}`, accept()), 404, 'MANIFEST_UNKNOWN');
      assertError(await call(f.url, 'HEAD', `/v2/${f.name}/manifests/no-such-tag`, { headers: accept() }), 404, 'MANIFEST_UNKNOWN');
      assertError(await get(`/v2/${f.name}/blobs/${absent}`), 404, 'BLOB_UNKNOWN');
      assertError(await call(f.url, 'HEAD', `/v2/${f.name}/blobs/${absent}`), 404, 'BLOB_UNKNOWN');
      assertError(await get(`/v2/${f.unknownName}/tags/list`), 404, 'NAME_UNKNOWN');
      assertError(await get(`/v2/${f.unknownName}/manifests/${f.tag}`, accept()), 404, f.unknownNameManifest.code);
    });
  });
}
