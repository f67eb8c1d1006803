import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, needsRoot } from '../helpers/tools.ts';
import { imageFacts } from '../copy/inspect.ts';
import { copy } from '../copy/transfer.ts';
import { filesLayer, layeredImage, type LayeredImage } from './images.ts';
import { startPodmanService, type PodmanService } from './podman-service.ts';
import { tarOf } from '../sources/droplet/fixtures.ts';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** docker-daemon: works against podman's Docker-compatible API as well: its export names layers by diff_id. */
describe('berth copy with docker-daemon: (podman system service)', { skip: missingCommands('podman') || needsRoot('for podman storage') }, () => {
  let service: PodmanService;
  let temp: { path: string; remove(): Promise<void> };
  let image: LayeredImage;
  let sibling: LayeredImage;

  before(async () => {
    temp = await tempDir('berth-podman-copy');
    service = await startPodmanService();
    const base = await filesLayer({ 'etc/base': 'shared\n' });
    image = layeredImage([base, await filesLayer({ 'app/a': 'a\n' }), await filesLayer({ 'app/b': 'b\n' })]);
    sibling = layeredImage([base, await filesLayer({ 'app/c': 'c\n' })]);
    for (const [each, name] of [
      [image, 'shop/app:1'],
      [sibling, 'shop/app:2'],
    ] as const) {
      const layerNames = each.tars.map((_, position) => `layer${position}.tar`);
      const archive = await tarOf([
        { name: 'config.json', body: each.config.bytes },
        ...each.tars.map((body, position) => ({ name: layerNames[position] as string, body })),
        { name: 'manifest.json', body: JSON.stringify([{ Config: 'config.json', RepoTags: [name], Layers: layerNames }]) },
      ]);
      const file = join(temp.path, `${name.replace(/[/:]/g, '-')}.tar`);
      await writeFile(file, archive);
      await service.podman(['load', '-q', '-i', file]);
    }
  });
  after(async () => {
    await service?.stop();
    await temp?.remove();
  });

  test('podman → directory → podman: three layers, then a sibling image sends only its own layer', async () => {
    const settings = { tempDir: temp.path, source: { daemonHost: service.host }, destination: { daemonHost: service.host } };
    const out = await copy('docker-daemon:shop/app:1', `oci:${temp.path}/layout:1`, settings);
    assert.equal(out.code, 0, out.reporter.failure());
    const facts = await imageFacts(`oci:${temp.path}/layout:1`, { authFiles: [], tempDir: temp.path });
    assert.equal(facts.configDigest, image.config.digest);
    assert.deepEqual(facts.layerDigests, image.diffIds);

    const next = await copy('docker-daemon:shop/app:2', `oci:${temp.path}/layout:2`, settings);
    assert.equal(next.code, 0, next.reporter.failure());
    assert.deepEqual(
      next.reporter.of('blob-skipped').map((event) => event.digest),
      [sibling.diffIds[0]],
    );

    await service.podman(['rmi', 'shop/app:1']);
    const back = await copy(`oci:${temp.path}/layout:1`, 'docker-daemon:shop/app:1', settings);
    assert.equal(back.code, 0, back.reporter.failure());
    assert.equal(back.reporter.of('image-copied')[0]?.imageId, image.config.digest, 'loaded, not only tagged');
    assert.equal(back.reporter.of('blob-copied').length, 3, "podman's load gets every layer, the shared one too");
    const id = (await service.podman(['image', 'inspect', '--format', '{{.Id}}', 'shop/app:1'])).trim();
    assert.equal(`sha256:${id}`, image.config.digest);
    const again = await copy(`oci:${temp.path}/layout:1`, 'docker-daemon:shop/app:1', settings);
    assert.equal(again.reporter.of('image-present').length, 1, again.reporter.failure());
  });
});
