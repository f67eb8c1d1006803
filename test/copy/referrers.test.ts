import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pushToDistribution, startDistribution, type Distribution } from '../helpers/distribution.ts';
import { pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { blobsOf, cosignArtifact } from '../proxy/signatures.ts';
import { copy, sync } from './transfer.ts';

async function referrersOf(url: string, repository: string, digest: string): Promise<string[]> {
  const body = (await (await fetch(`${url}/v2/${repository}/referrers/${digest}`)).json()) as { manifests: { digest: string }[] };
  return body.manifests.map((entry) => entry.digest).sort();
}

describe('berth copy and berth sync carry referrers', () => {
  let registry: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  let image: TestImage;
  let sbom: TestImage;
  let signature: TestImage;
  before(async () => {
    registry = await startTestRegistry();
    temp = await tempDir('berth-copy-referrers');
    image = randomImage();
    await pushImage(registry.url, 'team/app', 'v1', image);
    sbom = randomImage({ layers: 1, subject: image.manifest, artifactType: 'application/spdx+json' });
    await pushImage(registry.url, 'team/app', sbom.manifest.digest, sbom);
    signature = randomImage({ layers: 1, subject: sbom.manifest, artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' });
    await pushImage(registry.url, 'team/app', signature.manifest.digest, signature);
  });
  after(async () => {
    await registry?.close();
    await temp?.remove();
  });

  test('registry → layout → registry: the SBOM and its signature go along (listed in index.json), and --no-referrers leaves them', async () => {
    const out = await copy(`docker://${registry.host}/team/app:v1`, `oci:${temp.path}/layout:v1`, { tempDir: temp.path });
    assert.equal(out.code, 0, out.reporter.failure());
    assert.deepEqual(
      out.reporter.of('referrer-copied').map((event) => [event.subject, event.digest]),
      [
        [image.manifest.digest, sbom.manifest.digest],
        [sbom.manifest.digest, signature.manifest.digest],
      ],
    );
    assert.equal(out.reporter.of('image-copied')[0]?.referrers, 2);
    const index = JSON.parse(await readFile(join(temp.path, 'layout', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(index.manifests.map((entry) => entry.digest).sort(), [image.manifest.digest, sbom.manifest.digest, signature.manifest.digest].sort());

    const back = await copy(`oci:${temp.path}/layout:v1`, `docker://${registry.host}/restored/app:v1`, { tempDir: temp.path });
    assert.equal(back.code, 0, back.reporter.failure());
    assert.deepEqual(await referrersOf(registry.url, 'restored/app', image.manifest.digest), [sbom.manifest.digest]);
    assert.deepEqual(await referrersOf(registry.url, 'restored/app', sbom.manifest.digest), [signature.manifest.digest]);

    const bare = await copy(`docker://${registry.host}/team/app:v1`, `oci:${temp.path}/bare:v1`, { tempDir: temp.path, options: { referrers: false } });
    assert.equal(bare.code, 0, bare.reporter.failure());
    assert.equal(bare.reporter.of('referrer-copied').length, 0);
    const bareIndex = JSON.parse(await readFile(join(temp.path, 'bare', 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.deepEqual(
      bareIndex.manifests.map((entry) => entry.digest),
      [image.manifest.digest],
    );
  });

  test('sync brings signatures made after the image was synced', async () => {
    const first = await sync(`docker://${registry.host}/team/app`, `docker://${registry.host}/synced/app`, { tempDir: temp.path });
    assert.equal(first.code, 0, first.reporter.failure());
    const late = randomImage({ layers: 1, subject: image.manifest, artifactType: 'application/vnd.in-toto+json' });
    await pushImage(registry.url, 'team/app', late.manifest.digest, late);
    const second = await sync(`docker://${registry.host}/team/app`, `docker://${registry.host}/synced/app`, { tempDir: temp.path });
    assert.equal(second.code, 0, second.reporter.failure());
    assert.equal(second.reporter.of('image-up-to-date').length, 1);
    assert.deepEqual(await referrersOf(registry.url, 'synced/app', image.manifest.digest), [sbom.manifest.digest, late.manifest.digest].sort());
  });

  test('sync mirrors a whole registry by its catalog, with include and exclude globs', async () => {
    await pushImage(registry.url, 'team/skip', 'v1', randomImage());
    await pushImage(registry.url, 'other/tool', 'v1', randomImage());
    const mirror = await startTestRegistry();
    try {
      const result = await sync(`docker://${registry.host}`, `docker://${mirror.host}/mirror`, {
        tempDir: temp.path,
        options: { include: ['team/**', 'other/*'], exclude: ['team/skip', 'other/**'] },
      });
      assert.equal(result.code, 0, result.reporter.failure());
      assert.deepEqual(result.reporter.of('mirror-done'), [{ event: 'mirror-done', repositories: 1, synced: 1, failed: 0 }]);
      const catalog = (await (await fetch(`${mirror.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.deepEqual(catalog.repositories, ['mirror/team/app']);
      assert.deepEqual(await referrersOf(mirror.url, 'mirror/team/app', image.manifest.digest), await referrersOf(registry.url, 'team/app', image.manifest.digest));
    } finally {
      await mirror.close();
    }
  });
});

describe('berth copy carries cosign signatures from a registry without a referrers API', { skip: missingCommands('docker-registry') }, () => {
  let distribution: Distribution;
  let registry: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    distribution = await startDistribution();
    registry = await startTestRegistry();
    temp = await tempDir('berth-copy-cosign');
  });
  after(async () => {
    await registry?.close();
    await distribution?.close();
    await temp?.remove();
  });

  test('Distribution → Berth: the .sig tag arrives with the image', async () => {
    const image = randomImage();
    await pushToDistribution(distribution.url, 'team/signed', '1.0', { blobs: blobsOf(image), manifest: image.manifest });
    const signature = cosignArtifact(image.manifest, 'sig');
    await pushToDistribution(distribution.url, 'team/signed', signature.tag, { blobs: blobsOf(signature), manifest: signature.manifest });
    const result = await copy(`docker://${distribution.host}/team/signed:1.0`, `docker://${registry.host}/team/signed:1.0`, { tempDir: temp.path });
    assert.equal(result.code, 0, result.reporter.failure());
    assert.deepEqual(
      result.reporter.of('referrer-copied').map((event) => event.tag),
      [signature.tag],
    );
    const copied = await fetch(`${registry.url}/v2/team/signed/manifests/${signature.tag}`, { headers: { accept: signature.manifest.mediaType } });
    assert.equal(copied.headers.get('docker-content-digest'), signature.manifest.digest);
    await copied.arrayBuffer();
  });
});
