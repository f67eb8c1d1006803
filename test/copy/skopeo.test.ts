import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { StoreOptions } from '../../src/copy/open-store.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { imageIndex, pushImage, pushManifest } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';
import { realImage } from './fixtures.ts';
import { imageFacts } from './inspect.ts';
import { copy } from './transfer.ts';

function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

describe('skopeo reads what berth copy writes, and the other way round', { skip: missingCommands('skopeo') }, () => {
  let registry: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;
  let store: StoreOptions;

  before(async () => {
    registry = await startTestRegistry();
    temp = await tempDir('berth-skopeo');
    store = { authFiles: [], tempDir: temp.path };
    image = await realImage({ layers: 2 });
    await pushImage(registry.url, 'seed/app', '1.0', image);
  });
  after(async () => {
    await registry?.close();
    await temp?.remove();
  });

  for (const [transport, target] of [
    ['oci', (dir: string) => `oci:${dir}/berth-layout:1.0`],
    ['oci-archive', (dir: string) => `oci-archive:${dir}/berth.oci.tar:1.0`],
  ] as const) {
    test(`skopeo reads the ${transport} berth wrote, manifest byte for byte`, async () => {
      const written = target(temp.path);
      const result = await copy(`docker://${registry.host}/seed/app:1.0`, written, { tempDir: temp.path });
      assert.equal(result.code, 0, result.reporter.failure());
      const raw = await run('skopeo', ['inspect', '--raw', written]);
      assert.equal(sha256(raw), image.manifest.digest);
      const config = await run('skopeo', ['inspect', '--config', '--raw', written]);
      assert.equal(sha256(config), image.config.digest);
      // A full copy by skopeo reads (and checks) every blob too.
      await run('skopeo', ['copy', '--quiet', written, `oci:${temp.path}/skopeo-from-${transport}:x`]);
      assert.equal(sha256(await run('skopeo', ['inspect', '--raw', `oci:${temp.path}/skopeo-from-${transport}:x`])), image.manifest.digest);
    });
  }

  test('skopeo (and so podman load) reads the docker-archive berth wrote: names, config and layers', async () => {
    const written = `docker-archive:${temp.path}/berth.docker.tar`;
    const result = await copy(`docker://${registry.host}/seed/app:1.0`, written, { tempDir: temp.path });
    assert.equal(result.code, 0, result.reporter.failure());
    const inspected = JSON.parse(await run('skopeo', ['inspect', written])) as { Layers: string[] };
    assert.deepEqual(inspected.Layers, image.diffIds);
    const entries = JSON.parse(await run('tar', ['-xOf', `${temp.path}/berth.docker.tar`, 'manifest.json'])) as { RepoTags: string[]; Config: string; Layers: string[] }[];
    assert.deepEqual(entries, [
      { Config: `${image.config.digest.slice(7)}.json`, RepoTags: [`${registry.host}/seed/app:1.0`], Layers: image.diffIds.map((diffId) => `${diffId.slice(7)}.tar`) },
    ]);
    // skopeo finds the image by the name docker load would give it.
    assert.equal(sha256(await run('skopeo', ['inspect', '--config', '--raw', `${written}:${registry.host}/seed/app:1.0`])), image.config.digest);
    assert.equal(sha256(await run('skopeo', ['inspect', '--config', '--raw', written])), image.config.digest);
    await run('skopeo', ['copy', '--quiet', written, `oci:${temp.path}/skopeo-from-docker-archive:x`]);
  });

  test('berth reads the oci, oci-archive and docker-archive skopeo wrote', async () => {
    const source = `docker://${registry.host}/seed/app:1.0`;
    for (const [transport, written, sameManifest] of [
      ['oci', `oci:${temp.path}/skopeo-layout:1.0`, true],
      ['oci-archive', `oci-archive:${temp.path}/skopeo.oci.tar:1.0`, true],
      ['docker-archive', `docker-archive:${temp.path}/skopeo.docker.tar:seed/app:1.0`, false],
    ] as const) {
      await run('skopeo', ['copy', '--quiet', '--src-tls-verify=false', source, written]);
      const back = await copy(written, `docker://${registry.host}/from-skopeo/${transport}:1.0`, { tempDir: temp.path });
      assert.equal(back.code, 0, `${transport}: ${back.reporter.failure()}`);
      const facts = await imageFacts(`docker://${registry.host}/from-skopeo/${transport}:1.0`, store);
      assert.equal(facts.configDigest, image.config.digest, transport);
      assert.deepEqual(facts.diffIds, image.diffIds, transport);
      if (sameManifest) assert.equal(facts.manifestDigest, image.manifest.digest, transport);
    }
  });

  test('a multi-platform index copied with --all is read by skopeo; --platform picks one image', async () => {
    const amd = await realImage({ architecture: 'amd64' });
    const arm = await realImage({ architecture: 'arm64' });
    await pushImage(registry.url, 'multi/app', 'amd', amd);
    await pushImage(registry.url, 'multi/app', 'arm', arm);
    const index = imageIndex([
      { image: amd, os: 'linux', architecture: 'amd64' },
      { image: arm, os: 'linux', architecture: 'arm64' },
    ]);
    await pushManifest(registry.url, 'multi/app', 'latest', index);
    const all = await copy(`docker://${registry.host}/multi/app:latest`, `oci:${temp.path}/multi:latest`, { tempDir: temp.path, options: { platforms: 'all' } });
    assert.equal(all.code, 0, all.reporter.failure());
    assert.equal(sha256(await run('skopeo', ['inspect', '--raw', `oci:${temp.path}/multi:latest`])), index.digest);
    const armOnly = JSON.parse(await run('skopeo', ['inspect', '--override-arch', 'arm64', `oci:${temp.path}/multi:latest`])) as { Architecture: string; Layers: string[] };
    assert.equal(armOnly.Architecture, 'arm64');
    assert.deepEqual(
      armOnly.Layers,
      arm.layers.map((layer) => layer.digest),
    );
    const listed = JSON.parse(await readFile(join(temp.path, 'multi', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(
      listed.manifests.map((entry) => entry.digest),
      [index.digest],
      'children are blobs, not entries of index.json',
    );

    const one = await copy(`docker://${registry.host}/multi/app:latest`, `oci:${temp.path}/multi-arm:latest`, {
      tempDir: temp.path,
      options: { platforms: { os: 'linux', architecture: 'arm64' } },
    });
    assert.equal(one.code, 0, one.reporter.failure());
    assert.equal(sha256(await run('skopeo', ['inspect', '--raw', `oci:${temp.path}/multi-arm:latest`])), arm.manifest.digest);
    const archive = await copy(`docker://${registry.host}/multi/app:latest`, `docker-archive:${temp.path}/multi.tar`, { tempDir: temp.path, options: { platforms: 'all' } });
    assert.equal(archive.code, 1);
    assert.match(archive.reporter.failure(), /a docker archive holds single-platform images; choose one with --platform/);
  });

  test('--dest-compress zstd rewrites layers and manifest consistently; skopeo and Berth read the result', async () => {
    const written = `oci:${temp.path}/zstd:1.0`;
    const result = await copy(`docker://${registry.host}/seed/app:1.0`, written, { tempDir: temp.path, options: { compress: 'zstd' } });
    assert.equal(result.code, 0, result.reporter.failure());
    const facts = await imageFacts(written, store);
    assert.equal(facts.configDigest, image.config.digest, 'the config (and its diff_ids) is unchanged');
    assert.deepEqual(facts.diffIds, image.diffIds);
    assert.deepEqual(facts.layerMediaTypes, [mediaTypes.ociLayerZstd, mediaTypes.ociLayerZstd]);
    const raw = await run('skopeo', ['inspect', '--raw', written]);
    assert.equal(sha256(raw), facts.manifestDigest);
    // And back to gzip, which Node compresses exactly as the fixture did: the original image again.
    const back = await copy(written, `oci:${temp.path}/gzip-again:1.0`, { tempDir: temp.path, options: { compress: 'gzip' } });
    assert.equal(back.code, 0, back.reporter.failure());
    assert.equal((await imageFacts(`oci:${temp.path}/gzip-again:1.0`, store)).manifestDigest, image.manifest.digest);
  });

  test('a docker schema 2 image recompressed to zstd becomes an OCI image; its index follows', async () => {
    const docker = await realImage({ docker: true });
    await pushImage(registry.url, 'docker/app', 'v1', docker);
    const list = imageIndex([{ image: docker, os: 'linux', architecture: 'amd64' }], true);
    await pushManifest(registry.url, 'docker/app', 'list', list);
    const result = await copy(`docker://${registry.host}/docker/app:list`, `oci:${temp.path}/converted:list`, {
      tempDir: temp.path,
      options: { compress: 'zstd', platforms: 'all' },
    });
    assert.equal(result.code, 0, result.reporter.failure());
    const top = JSON.parse(await run('skopeo', ['inspect', '--raw', `oci:${temp.path}/converted:list`])) as {
      mediaType: string;
      manifests: { digest: string; mediaType: string }[];
    };
    assert.equal(top.mediaType, mediaTypes.ociIndex);
    assert.equal(top.manifests[0]?.mediaType, mediaTypes.ociManifest);
    const childDigest = top.manifests[0]?.digest ?? '';
    const child = JSON.parse(await readFile(join(temp.path, 'converted', 'blobs', 'sha256', childDigest.slice(7)), 'utf8')) as {
      mediaType: string;
      config: { mediaType: string; digest: string };
    };
    assert.equal(child.mediaType, mediaTypes.ociManifest);
    assert.equal(child.config.mediaType, mediaTypes.ociConfig);
    assert.equal(child.config.digest, docker.config.digest);
  });
});
