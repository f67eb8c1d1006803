import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { postgresMissing } from '../helpers/postgres.ts';
import type { TestRegistry } from '../helpers/registry.ts';
import { startScaleOutRegistry } from '../helpers/scaleout.ts';
import { assertConsistent, storedDigests } from './state.ts';

describe('garbage collection on S3 and PostgreSQL', { skip: postgresMissing() }, () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startScaleOutRegistry('gc', { 'gc.interval': 0, 'gc.gracePeriod': 0, 'gc.uploadExpiry': '50ms' }, { multipartExpiry: 0 });
  });

  after(async () => {
    await registry?.close();
  });

  it('deletes objects of unreferenced blobs and expired uploads, keeping referenced ones', async () => {
    const [kept, dropped] = [randomImage(), randomImage()];
    await pushImage(registry.url, 'team/app', 'kept', kept);
    await pushImage(registry.url, 'team/app', 'dropped', dropped);
    assert.equal((await call(registry.url, 'DELETE', `/v2/team/app/manifests/${dropped.manifest.digest}`)).status, 202);
    const location = (await call(registry.url, 'POST', '/v2/team/app/blobs/uploads/')).headers.get('location') as string;
    assert.equal((await call(registry.url, 'PATCH', location, { body: randomBytes(500), headers: { 'content-type': 'application/octet-stream' } })).status, 202);
    const { operations, meta, blobs } = registry.server.registry;
    // By the pass's clock the upload is older than uploadExpiry.
    const report = await operations.collect({ clock: () => Date.now() + 100 });
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
