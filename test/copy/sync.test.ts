import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { realImage } from './fixtures.ts';
import { imageFacts } from './inspect.ts';
import { sync } from './transfer.ts';

describe('berth sync', () => {
  let registry: TestRegistry;
  let s3: TestS3;
  let temp: { path: string; remove(): Promise<void> };
  const images = new Map<string, Awaited<ReturnType<typeof realImage>>>();

  before(async () => {
    registry = await startTestRegistry();
    s3 = await startTestS3('mirror');
    temp = await tempDir('berth-sync');
    for (const tag of ['v1', 'v2', 'dev']) {
      const image = await realImage();
      images.set(tag, image);
      await pushImage(registry.url, 'team/app', tag, image);
    }
  });
  after(async () => {
    await registry?.close();
    await s3?.close();
    await temp?.remove();
  });

  test('copies the tags that match to a bucket, and then only what changed', async () => {
    const settings = { tempDir: temp.path, s3, options: { tags: /^(?:v.*)$/ } };
    const first = await sync(`docker://${registry.host}/team/app`, 's3://mirror/team/app', settings);
    assert.equal(first.code, 0, first.reporter.failure());
    assert.deepEqual(first.reporter.of('sync-done'), [{ event: 'sync-done', images: 2, copied: 2, upToDate: 0, failed: 0 }]);
    const store = { authFiles: [], tempDir: temp.path, s3: { region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials } };
    for (const tag of ['v1', 'v2']) {
      assert.equal((await imageFacts(`s3://mirror/team/app:${tag}`, store)).manifestDigest, images.get(tag)?.manifest.digest);
    }
    await assert.rejects(imageFacts('s3://mirror/team/app:dev', store), /has no manifest dev/);

    const v3 = await realImage();
    await pushImage(registry.url, 'team/app', 'v3', v3);
    const second = await sync(`docker://${registry.host}/team/app`, 's3://mirror/team/app', settings);
    assert.equal(second.code, 0, second.reporter.failure());
    assert.deepEqual(second.reporter.of('sync-done'), [{ event: 'sync-done', images: 3, copied: 1, upToDate: 2, failed: 0 }]);
    assert.equal(second.reporter.of('blob-copied').length, 3, 'only v3 moved');
  });

  test('and back from the bucket into a registry: every tag', async () => {
    const result = await sync('s3://mirror/team/app', `docker://${registry.host}/restored/app`, { tempDir: temp.path, s3 });
    assert.equal(result.code, 0, result.reporter.failure());
    const tags = (await (await fetch(`${registry.url}/v2/restored/app/tags/list`)).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ['v1', 'v2', 'v3']);
  });

  test('one broken image does not stop the others: exit code 7 and an event naming it', async () => {
    const layout = join(temp.path, 'broken');
    const seeded = await sync(`docker://${registry.host}/team/app`, `oci:${layout}`, { tempDir: temp.path, options: { tags: /^(?:v1|v2)$/ } });
    assert.equal(seeded.code, 0, seeded.reporter.failure());
    const layer = images.get('v2')?.layers[0];
    assert.ok(layer !== undefined);
    await writeFile(join(layout, 'blobs', 'sha256', layer.digest.slice(7)), Buffer.alloc(layer.bytes.length, 1));
    const result = await sync(`oci:${layout}`, `oci:${join(temp.path, 'broken-copy')}`, { tempDir: temp.path });
    assert.equal(result.code, 7);
    const failed = result.reporter.of('image-failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.code, 'DIGEST_INVALID');
    assert.equal(failed[0]?.exitCode, 6);
    assert.match(failed[0]?.source ?? '', /broken:v2$/);
    assert.equal(result.reporter.of('image-copied').length, 1);
  });

  test('every failing image gets its own image-failed event, not only the first', async () => {
    const layout = join(temp.path, 'two-broken');
    const seeded = await sync(`docker://${registry.host}/team/app`, `oci:${layout}`, { tempDir: temp.path, options: { tags: /^(?:v1|v2|dev)$/ } });
    assert.equal(seeded.code, 0, seeded.reporter.failure());
    for (const tag of ['v1', 'v2']) {
      const layer = images.get(tag)?.layers[0];
      assert.ok(layer !== undefined);
      await writeFile(join(layout, 'blobs', 'sha256', layer.digest.slice(7)), Buffer.alloc(layer.bytes.length, 1));
    }
    const result = await sync(`oci:${layout}`, `oci:${join(temp.path, 'two-broken-copy')}`, { tempDir: temp.path });
    assert.equal(result.code, 7);
    assert.deepEqual(result.reporter.of('sync-done'), [{ event: 'sync-done', images: 3, copied: 1, upToDate: 0, failed: 2 }]);
    const failed = result.reporter.of('image-failed').map((event) => event.source.replace(/^.*:/, ''));
    assert.deepEqual(failed.sort(), ['v1', 'v2']);
  });

  test('a source or destination naming a tag is a usage error (exit code 2)', async () => {
    const result = await sync(`docker://${registry.host}/team/app:v1`, `oci:${temp.path}/x`, { tempDir: temp.path });
    assert.equal(result.code, 2);
    assert.match(result.reporter.failure(), /sync copies whole repositories/);
  });
});
