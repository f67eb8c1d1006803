import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { manifestOf, pushImage, pushManifest, randomImage } from '../helpers/images.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import type { BerthProcess } from '../helpers/process.ts';
import { objectStoreMissing, startTestObjectStore } from '../helpers/rgw.ts';
import type { TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { chunkedUploads, fresh, workersServing, startTwoWorkers } from './fresh-connections.ts';

describe('two workers on PostgreSQL and an S3 object store', { skip: postgresMissing() || objectStoreMissing() }, () => {
  let dir: { path: string; remove(): Promise<void> };
  let postgres: TestPostgres;
  let store: TestS3;
  let berth: BerthProcess & { url: string };

  before(async () => {
    dir = await tempDir('berth-workers-scaleout');
    postgres = await startTestPostgres();
    store = await startTestObjectStore();
    const database = await postgres.createDatabase();
    const config = {
      storage: { driver: 's3', s3: { bucket: store.bucket, prefix: 'workers', endpoint: store.endpoint, forcePathStyle: true, credentials: store.credentials } },
      metadata: { driver: 'postgres', postgres: { host: database.host, port: database.port, user: database.user, database: database.database } },
    };
    berth = await startTwoWorkers(dir.path, config);
  });
  after(async () => {
    await berth?.stop();
    await store?.close();
    await postgres?.close();
    await dir?.remove();
  });

  it('an upload continues on either worker, and a moved tag reads back moved from both', async () => {
    assert.ok((await chunkedUploads(berth, 'team/uploads', {}, 8)) > 0, 'some uploads moved between workers mid-way');
    const image = randomImage({ layers: 1, layerSize: 512 });
    await pushImage(berth.url, 'team/moving', '1', image);
    for (let round = 0; round < 4; round += 1) {
      const manifest = manifestOf({ ...(JSON.parse(image.manifest.bytes.toString()) as object), annotations: { round: String(round) } }, mediaTypes.ociManifest);
      assert.equal((await pushManifest(berth.url, 'team/moving', 'latest', manifest)).status, 201);
      for (let read = 0; read < 4; read += 1) {
        const answer = await fresh(berth.url, 'GET', '/v2/team/moving/manifests/latest', { headers: { accept: mediaTypes.ociManifest } });
        assert.equal(answer.headers['docker-content-digest'], manifest.digest);
      }
    }
    assert.deepEqual([...workersServing(berth, '/v2/team/moving/manifests/latest')].sort(), [0, 1]);
  });
});
