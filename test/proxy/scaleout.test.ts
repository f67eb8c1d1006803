import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { blobOf, pushBlob, pushImage, randomImage } from '../helpers/images.ts';
import { postgresMetadataSettings, postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { s3StorageSettings, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { startProxySetup, type ProxySetup } from './setup.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest, mediaTypes.dockerManifestList, mediaTypes.dockerManifest].join(', ');

/** The cache on S3 and PostgreSQL, as replicas run it: fills go through the S3 upload area, manifests into PostgreSQL. */
describe('pull-through cache on S3 and PostgreSQL', { skip: postgresMissing() }, () => {
  let postgres: TestPostgres;
  let s3: TestS3;
  let setup: ProxySetup;

  before(async () => {
    postgres = await startTestPostgres();
    s3 = await startTestS3();
    setup = await startProxySetup(
      { tagTtl: 0, failureBackoff: '1h' },
      { ...s3StorageSettings(s3, 'cache'), ...postgresMetadataSettings(await postgres.createDatabase()), 'metadata.postgres.pool.max': 4 },
    );
  });
  after(async () => {
    await setup?.close();
    await s3?.close();
    await postgres?.close();
  });

  test('a blob stored for another repository is linked after the upstream confirms it, not copied again', async () => {
    const shared = blobOf(randomBytes(64 * 1024));
    await pushBlob(setup.upstream.url, 'one/app', shared);
    await pushBlob(setup.upstream.url, 'two/app', shared);
    const first = await fetch(`${setup.proxy.url}/v2/up/one/app/blobs/${shared.digest}`);
    assert.ok(Buffer.from(await first.arrayBuffer()).equals(shared.bytes));
    const second = await fetch(`${setup.proxy.url}/v2/up/two/app/blobs/${shared.digest}`);
    assert.ok(Buffer.from(await second.arrayBuffer()).equals(shared.bytes));
    assert.equal(setup.forwarder.count('GET', `/blobs/${shared.digest}`), 1);
    assert.equal(setup.forwarder.count('HEAD', `/v2/two/app/blobs/${shared.digest}`), 1);
  });

  test('cold pulls (concurrent ones reaching the upstream once), then pulls while the upstream is down', async () => {
    const image = randomImage({ layers: 2, layerSize: 6 * 1024 * 1024 });
    await pushImage(setup.upstream.url, 'big/app', '1.0', image);
    const manifest = await fetch(`${setup.proxy.url}/v2/up/big/app/manifests/1.0`, { headers: { accept } });
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
    await manifest.arrayBuffer();
    for (const blob of [image.config, ...image.layers]) {
      const bodies = await Promise.all(
        Array.from({ length: 4 }, () => fetch(`${setup.proxy.url}/v2/up/big/app/blobs/${blob.digest}`).then(async (response) => Buffer.from(await response.arrayBuffer()))),
      );
      for (const body of bodies) assert.ok(body.equals(blob.bytes));
      assert.equal(setup.forwarder.count('GET', `/blobs/${blob.digest}`), 1);
    }
    await setup.forwarder.close();
    const stale = await fetch(`${setup.proxy.url}/v2/up/big/app/manifests/1.0`, { headers: { accept } });
    assert.equal(stale.status, 200);
    await stale.arrayBuffer();
    for (const blob of image.layers) {
      const response = await fetch(`${setup.proxy.url}/v2/up/big/app/blobs/${blob.digest}`);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(blob.bytes));
    }
  });
});
