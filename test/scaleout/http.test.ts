import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { postgresMissing } from '../helpers/postgres.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { startScaleOutRegistry } from '../helpers/scaleout.ts';
import { assertSameBytes } from '../helpers/stores.ts';

/**
 * The HTTP API over S3 + PostgreSQL, configured the way an operator does,
 * with redirects off so that Berth streams blobs from S3 itself.
 */
describe('the registry on S3 and PostgreSQL', { skip: postgresMissing() }, () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startScaleOutRegistry('http', { 'storage.redirects': false, 'metadata.postgres.pool.max': 4 });
  });

  after(async () => {
    await registry?.close();
  });

  it('advertises S3 part size as the chunk minimum', async () => {
    const response = await fetch(`${registry.url}/v2/team/app/blobs/uploads/`, { method: 'POST' });
    assert.equal(response.status, 202);
    assert.equal(response.headers.get('oci-chunk-min-length'), String(5 * 1024 * 1024));
  });

  it('streams blobs and ranges from S3 when redirects are off', async () => {
    const image = randomImage({ layers: 1, layerSize: 10_000 });
    await pushImage(registry.url, 'team/app', 'v1', image);
    const layer = image.layers[0] as (typeof image.layers)[number];
    const whole = await fetch(`${registry.url}/v2/team/app/blobs/${layer.digest}`, { redirect: 'manual' });
    assert.equal(whole.status, 200);
    assert.equal(whole.headers.get('docker-content-digest'), layer.digest);
    assertSameBytes(Buffer.from(await whole.arrayBuffer()), layer.bytes);
    for (const [start, end] of [
      [0, 0],
      [100, 5099],
      [9999, 9999],
    ] as const) {
      const part = await fetch(`${registry.url}/v2/team/app/blobs/${layer.digest}`, { headers: { range: `bytes=${start}-${end}` } });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes ${start}-${end}/10000`);
      assertSameBytes(Buffer.from(await part.arrayBuffer()), layer.bytes.subarray(start, end + 1), `bytes ${start}-${end}`);
    }
  });

  it('serves manifests, tags and the catalog from PostgreSQL', async () => {
    const image = randomImage();
    await pushImage(registry.url, 'team/listed', 'b', image);
    await pushImage(registry.url, 'team/listed', 'A', image);
    const manifest = await fetch(`${registry.url}/v2/team/listed/manifests/b`, { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
    assertSameBytes(Buffer.from(await manifest.arrayBuffer()), image.manifest.bytes);
    assert.deepEqual(await (await fetch(`${registry.url}/v2/team/listed/tags/list`)).json(), { name: 'team/listed', tags: ['A', 'b'] });
    const catalog = (await (await fetch(`${registry.url}/v2/_catalog`)).json()) as { repositories: string[] };
    assert.ok(catalog.repositories.includes('team/listed'));
  });
});
