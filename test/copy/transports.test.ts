import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import type { StoreOptions } from '../../src/copy/open-store.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { realImage } from './fixtures.ts';
import { imageFacts } from './inspect.ts';
import { copy } from './transfer.ts';

const transports = ['docker', 'oci', 's3', 'oci-archive', 'docker-archive'] as const;
type Transport = (typeof transports)[number];

describe('berth copy between every pair of transports', () => {
  let registry: TestRegistry;
  let s3: TestS3;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;
  let store: StoreOptions;

  const location = (transport: Transport, name: string): string => {
    switch (transport) {
      case 'docker':
        return `docker://${registry.host}/pairs/${name}:1.0`;
      case 'oci':
        return `oci:${temp.path}/${name}:1.0`;
      case 's3':
        return `s3://layouts/${name}:1.0`;
      case 'oci-archive':
        return `oci-archive:${temp.path}/${name}.oci.tar:1.0`;
      case 'docker-archive':
        return `docker-archive:${temp.path}/${name}.docker.tar:pairs/${name}:1.0`;
    }
  };

  before(async () => {
    registry = await startTestRegistry();
    s3 = await startTestS3('layouts');
    temp = await tempDir('berth-pairs');
    store = { authFiles: [], tempDir: temp.path, s3: { region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: s3.credentials } };
    image = await realImage({ layers: 2, layerSize: 8 * 1024 });
    await pushImage(registry.url, 'seed/app', '1.0', image);
  });
  after(async () => {
    await registry?.close();
    await s3?.close();
    await temp?.remove();
  });

  for (const from of transports) {
    test(`from ${from} to every transport`, async () => {
      const source = location(from, `origin-${from}`);
      if (from !== 'docker') {
        const seeded = await copy(`docker://${registry.host}/seed/app:1.0`, source, { tempDir: temp.path, s3 });
        assert.equal(seeded.code, 0, seeded.reporter.failure());
      } else {
        const seeded = await copy(`docker://${registry.host}/seed/app:1.0`, source, { tempDir: temp.path });
        assert.equal(seeded.code, 0, seeded.reporter.failure());
      }
      for (const to of transports) {
        const destination = location(to, `${from}-to-${to}`);
        const result = await copy(source, destination, { tempDir: temp.path, s3 });
        assert.equal(result.code, 0, `${source} → ${destination}: ${result.reporter.failure()}`);
        const facts = await imageFacts(destination, store);
        assert.equal(facts.configDigest, image.config.digest, `${from} → ${to}: same config`);
        assert.deepEqual(facts.diffIds, image.diffIds, `${from} → ${to}: same layer content`);
        if (to === 'docker-archive') {
          // Docker archives hold layers as plain tars, read back as Docker schema 2: layer digests are the diff_ids.
          assert.equal(facts.mediaType, mediaTypes.dockerManifest);
          assert.deepEqual(facts.layerMediaTypes, [mediaTypes.dockerLayerTar, mediaTypes.dockerLayerTar]);
        } else if (from === 'docker-archive') {
          // Out of an archive, layers are gzip-compressed again (as skopeo does); the manifest stays Docker schema 2,
          // except in layouts, which hold OCI images only.
          const layout = to === 'oci' || to === 's3' || to === 'oci-archive';
          assert.equal(facts.mediaType, layout ? mediaTypes.ociManifest : mediaTypes.dockerManifest, `${from} → ${to}`);
          assert.deepEqual(facts.layerMediaTypes, layout ? [mediaTypes.ociLayerGzip, mediaTypes.ociLayerGzip] : [mediaTypes.dockerLayerGzip, mediaTypes.dockerLayerGzip]);
        } else {
          // Every other pair carries the manifest byte for byte.
          assert.equal(facts.manifestDigest, image.manifest.digest, `${from} → ${to}: same manifest digest`);
        }
      }
    });
  }

  test('archives grow: an image added to a docker archive keeps the others, each found by name or position', async () => {
    const other = await realImage({ layers: 1 });
    await pushImage(registry.url, 'seed/other', '2.0', other);
    const archive = `${temp.path}/two.docker.tar`;
    for (const [source, name] of [
      [`docker://${registry.host}/seed/app:1.0`, 'first/app:1.0'],
      [`docker://${registry.host}/seed/other:2.0`, 'second/app:2.0'],
    ] as const) {
      const result = await copy(source, `docker-archive:${archive}:${name}`, { tempDir: temp.path });
      assert.equal(result.code, 0, result.reporter.failure());
      assert.equal(result.reporter.of('image-copied')[0]?.destination, `docker-archive:${archive}:${name}`, 'events name the image, not only its tag');
    }
    assert.equal((await imageFacts(`docker-archive:${archive}:first/app:1.0`, store)).configDigest, image.config.digest);
    assert.equal((await imageFacts(`docker-archive:${archive}:second/app:2.0`, store)).configDigest, other.config.digest);
    assert.equal((await imageFacts(`docker-archive:${archive}:@1`, store)).configDigest, other.config.digest);
    await assert.rejects(imageFacts(`docker-archive:${archive}`, store), /names no single image/);
  });

  test('a gzip-compressed OCI archive is read like a plain one', async () => {
    const plain = `${temp.path}/plain.oci.tar`;
    const seeded = await copy(`docker://${registry.host}/seed/app:1.0`, `oci-archive:${plain}:1.0`, { tempDir: temp.path });
    assert.equal(seeded.code, 0, seeded.reporter.failure());
    await writeFile(`${plain}.gz`, gzipSync(await readFile(plain)));
    const result = await copy(`oci-archive:${plain}.gz:1.0`, `oci:${temp.path}/from-gzip:1.0`, { tempDir: temp.path });
    assert.equal(result.code, 0, result.reporter.failure());
    assert.equal((await imageFacts(`oci:${temp.path}/from-gzip:1.0`, store)).manifestDigest, image.manifest.digest);
  });

  test('a second copy to the same destination sends nothing again', async () => {
    const destination = `s3://layouts/again:1.0`;
    const first = await copy(`docker://${registry.host}/seed/app:1.0`, destination, { tempDir: temp.path, s3 });
    assert.equal(first.code, 0, first.reporter.failure());
    const second = await copy(`docker://${registry.host}/seed/app:1.0`, destination, { tempDir: temp.path, s3 });
    assert.equal(second.code, 0, second.reporter.failure());
    assert.equal(second.reporter.of('blob-copied').length, 0);
    assert.equal(second.reporter.of('blob-skipped').length, 3);
  });
});
