import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { postgresMetadataSettings, postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { s3StorageSettings, startTestS3, type TestS3 } from '../helpers/s3.ts';
import { assertConsistent, storedDigests } from './state.ts';

describe('garbage collection on S3 and PostgreSQL', { skip: postgresMissing() }, () => {
  let postgres: TestPostgres;
  let s3: TestS3;
  let registry: TestRegistry;

  before(async () => {
    postgres = await startTestPostgres();
    s3 = await startTestS3();
    registry = await startTestRegistry({
      'gc.interval': 0,
      'gc.gracePeriod': 0,
      'gc.uploadExpiry': '50ms',
      ...s3StorageSettings(s3, 'gc', { multipartExpiry: 0 }),
      ...postgresMetadataSettings(await postgres.createDatabase()),
    });
  });

  after(async () => {
    await registry?.close();
    await s3?.close();
    await postgres?.close();
  });

  it('deletes objects of unreferenced blobs and expired uploads, keeping referenced ones', async () => {
    const [kept, dropped] = [randomImage(), randomImage()];
    await pushImage(registry.url, 'team/app', 'kept', kept);
    await pushImage(registry.url, 'team/app', 'dropped', dropped);
    assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/manifests/${dropped.manifest.digest}`)).status, 202);
    const location = (await call(registry.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.get('location') as string;
    assert.equal((await call(registry.url, 'PATCH', location, { body: randomBytes(500), headers: { 'content-type': 'application/octet-stream' } })).status, 202);
    await sleep(100);
    const { operations, meta, blobs } = registry.server.registry;
    const report = await operations.collect();
    assert.ok(report !== undefined);
    assert.equal(report.blobsDeleted, 3);
    assert.equal(report.uploads.sessions, 1);
    assert.equal((await call(registry.url, 'GET', location)).status, 404);
    let uploads = 0;
    for await (const _upload of blobs.uploads.list()) uploads++;
    assert.equal(uploads, 0, 'the upload objects are gone');
    const stored = await storedDigests(blobs);
    assert.deepEqual([...stored].sort(), [kept.config, ...kept.layers].map((blob) => blob.digest as string).sort());
    await assertConsistent(meta, blobs);
  });
});
