import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { imageIndex, pushImage, pushManifest } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { missingCommands, run } from '../helpers/tools.ts';
import { realImage } from './fixtures.ts';
import { copy, sync } from './transfer.ts';

interface RawManifest {
  mediaType: string;
  config: { mediaType: string; digest: string };
  layers: { mediaType: string; digest: string }[];
}

/**
 * Layouts written from Docker schema 2 images are OCI, so that the tools
 * that read layouts (skopeo 1.9, podman 4.3, umoci 0.4.7 refuse Docker
 * manifests there) read them; digests of config and layers stay.
 */
describe('skopeo, podman and umoci read the layouts berth copy writes from Docker images', { skip: missingCommands('skopeo', 'podman', 'umoci') }, () => {
  let registry: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;
  let podman: string[];

  before(async () => {
    registry = await startTestRegistry();
    // podman names an image pulled from a layout after its path, which must be lowercase.
    const path = join(tmpdir(), `berth-layout-readers-${randomBytes(6).toString('hex')}`);
    await mkdir(path);
    temp = { path, remove: () => rm(path, { recursive: true, force: true }) };
    podman = ['--root', join(temp.path, 'storage'), '--runroot', join(temp.path, 'run'), '--storage-driver', 'vfs'];
    image = await realImage({ docker: true, layers: 2 });
    await pushImage(registry.url, 'docker/app', '1.0', image);
  });
  after(async () => {
    await registry?.close();
    await temp?.remove();
  });

  for (const transport of ['oci', 'oci-archive'] as const) {
    test(`${transport}: an OCI manifest over the same config and layers, which all three tools read`, async () => {
      const path = join(temp.path, transport === 'oci' ? 'layout' : 'layout.tar');
      const written = `${transport}:${path}:1.0`;
      const result = await copy(`docker://${registry.host}/docker/app:1.0`, written, { tempDir: temp.path });
      assert.equal(result.code, 0, result.reporter.failure());
      assert.equal(result.reporter.of('manifest-written')[0]?.mediaType, mediaTypes.ociManifest);

      const raw = JSON.parse(await run('skopeo', ['inspect', '--raw', written])) as RawManifest;
      assert.equal(raw.mediaType, mediaTypes.ociManifest);
      assert.deepEqual(raw.config, { mediaType: mediaTypes.ociConfig, digest: image.config.digest, size: image.config.bytes.length });
      assert.deepEqual(
        raw.layers.map((layer) => [layer.mediaType, layer.digest]),
        image.layers.map((layer) => [mediaTypes.ociLayerGzip, layer.digest]),
      );
      await run('skopeo', ['copy', '--quiet', written, `dir:${join(temp.path, `skopeo-${transport}`)}`]);

      const id = (await run('podman', [...podman, 'pull', '-q', written])).trim();
      assert.equal(`sha256:${id}`, image.config.digest, 'podman stores the image under its config digest');

      let layout = path;
      if (transport === 'oci-archive') {
        layout = join(temp.path, 'unpacked-archive');
        await run('mkdir', ['-p', layout]);
        await run('tar', ['-xf', path, '-C', layout]);
      }
      const bundle = join(temp.path, `bundle-${transport}`);
      await run('umoci', ['unpack', '--image', `${layout}:1.0`, bundle]);
      const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8')) as { process: { env: string[] } };
      assert.ok(config.process.env.includes('PATH=/bin'), 'umoci read the image config');
      assert.ok((await stat(join(bundle, 'rootfs'))).isDirectory());
    });
  }

  test('a Docker manifest list becomes an OCI index over OCI manifests; skopeo copies every platform', async () => {
    const arm = await realImage({ docker: true, architecture: 'arm64' });
    await pushImage(registry.url, 'docker/app', 'arm', arm);
    const list = imageIndex(
      [
        { image, os: 'linux', architecture: 'amd64' },
        { image: arm, os: 'linux', architecture: 'arm64' },
      ],
      true,
    );
    await pushManifest(registry.url, 'docker/app', 'list', list);
    const written = `oci:${join(temp.path, 'multi')}:list`;
    const result = await copy(`docker://${registry.host}/docker/app:list`, written, { tempDir: temp.path, options: { platforms: 'all' } });
    assert.equal(result.code, 0, result.reporter.failure());
    const top = JSON.parse(await run('skopeo', ['inspect', '--raw', written])) as { mediaType: string; manifests: { mediaType: string; platform: { architecture: string } }[] };
    assert.equal(top.mediaType, mediaTypes.ociIndex);
    assert.deepEqual(
      top.manifests.map((entry) => [entry.mediaType, entry.platform.architecture]),
      [
        [mediaTypes.ociManifest, 'amd64'],
        [mediaTypes.ociManifest, 'arm64'],
      ],
    );
    const armOnly = JSON.parse(await run('skopeo', ['inspect', '--override-arch', 'arm64', written])) as { Layers: string[] };
    assert.deepEqual(
      armOnly.Layers,
      arm.layers.map((layer) => layer.digest),
    );
    await run('skopeo', ['copy', '--quiet', '--all', written, `oci:${join(temp.path, 'multi-by-skopeo')}:list`]);
  });

  test('--preserve-digests refuses a conversion (exit 2) and writes nothing; an OCI image copies unchanged', async () => {
    const refused = await copy(`docker://${registry.host}/docker/app:1.0`, `oci:${join(temp.path, 'preserved')}:1.0`, { tempDir: temp.path, options: { preserveDigests: true } });
    assert.equal(refused.code, 2);
    assert.match(refused.reporter.failure(), /--preserve-digests: .* holds OCI images, so application\/vnd\.docker\.distribution\.manifest\.v2\+json would be converted/);
    assert.equal(refused.reporter.of('blob-copied').length, 0, 'refused before any blob moved');
    await assert.rejects(stat(join(temp.path, 'preserved', 'index.json')));

    const oci = await realImage();
    await pushImage(registry.url, 'oci/app', '1.0', oci);
    const kept = await copy(`docker://${registry.host}/oci/app:1.0`, `oci:${join(temp.path, 'preserved')}:1.0`, { tempDir: temp.path, options: { preserveDigests: true } });
    assert.equal(kept.code, 0, kept.reporter.failure());
    assert.equal(kept.reporter.of('image-copied')[0]?.digest, oci.manifest.digest);
    const zstd = await copy(`docker://${registry.host}/oci/app:1.0`, `oci:${join(temp.path, 'preserved')}:z`, {
      tempDir: temp.path,
      options: { preserveDigests: true, compress: 'zstd' },
    });
    assert.equal(zstd.code, 2);
    assert.match(zstd.reporter.failure(), /would be recompressed/);
  });

  test('sync into a layout knows a converted image is up to date', async () => {
    const destination = `oci:${join(temp.path, 'synced')}`;
    const first = await sync(`docker://${registry.host}/docker/app`, destination, { tempDir: temp.path, options: { tags: /1\.0/ } });
    assert.equal(first.code, 0, first.reporter.failure());
    assert.equal(first.reporter.of('image-copied').length, 1);
    const second = await sync(`docker://${registry.host}/docker/app`, destination, { tempDir: temp.path, options: { tags: /1\.0/ } });
    assert.equal(second.code, 0, second.reporter.failure());
    assert.deepEqual(
      second.reporter.of('image-up-to-date').map((event) => event.digest),
      [first.reporter.of('image-copied')[0]?.digest],
    );
  });
});
