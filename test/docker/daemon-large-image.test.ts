import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { berthMain } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { openStore } from '../../src/copy/open-store.ts';
import { parseLocation } from '../../src/copy/location.ts';
import type { Descriptor } from '../../src/oci/manifest.ts';
import { measured, writeRandomImageArchive } from './big-image.ts';
import { imageId } from './images.ts';
import { startPodmanService, type PodmanService } from './podman-service.ts';

/** The image's size: 1 GiB unless BERTH_LARGE_IMAGE_MIB says otherwise (a smaller one for a quick run). */
const mib = Number(process.env['BERTH_LARGE_IMAGE_MIB'] ?? '1024');
/**
 * What `berth copy` may hold at its peak: Node's own footprint (about 175 MiB
 * for any image on these machines) and bounded buffers, far below the image.
 */
const peakLimitMiB = 320;

/**
 * A large image of random bytes out of one Docker Engine into a directory
 * and into a second engine (and out of podman's API service and back): the image ID survives, and the memory of each
 * `berth copy` does not grow with the image (measured with GNU time, as
 * bench/docker-daemon.ts does to compare it with docker save + docker load).
 */
describe(`docker-daemon: a ${mib} MiB image both ways in bounded memory`, { skip: dockerUnavailable() || missingCommands('time') }, () => {
  let build: DockerEngine;
  let server: DockerEngine;
  let temp: { path: string; remove(): Promise<void> };
  let id: string;
  const name = 'large/image:1';

  before(async () => {
    temp = await tempDir('berth-daemon-large');
    [build, server] = await Promise.all([startDockerEngine(), startDockerEngine()]);
    const seed = join(temp.path, 'seed.tar');
    id = await writeRandomImageArchive(seed, name, mib * 2 ** 20, 4);
    await build.docker(['load', '-q', '-i', seed]);
    await rm(seed);
  });
  after(async () => {
    await Promise.all([build?.stop(), server?.stop()]);
    await temp?.remove();
  });

  test('daemon → directory → another daemon: same image ID and layers; peak RSS of each copy under the limit', async (t) => {
    await roundTrip(t, { host: build.host, name, id, tempDirectory: temp.path }, server.host, async (reference) => ({
      id: await imageId(server, reference),
      layers: JSON.parse(await server.docker(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', reference])) as string[],
    }));
  });
});

describe(`docker-daemon: a ${mib} MiB image out of podman and back in bounded memory`, {
  skip: missingCommands('podman', 'time') || (process.getuid?.() !== 0 && 'needs root for podman storage'),
}, () => {
  let service: PodmanService;
  let temp: { path: string; remove(): Promise<void> };
  let id: string;
  const name = 'large/image:1';

  before(async () => {
    temp = await tempDir('berth-podman-large');
    service = await startPodmanService();
    const seed = join(temp.path, 'seed.tar');
    id = await writeRandomImageArchive(seed, name, mib * 2 ** 20, 4);
    await service.podman(['load', '-q', '-i', seed]);
    await rm(seed);
  });
  after(async () => {
    await service?.stop();
    await temp?.remove();
  });

  test('podman → directory → podman: same image ID and layers; peak RSS of each copy under the limit', async (t) => {
    const inspect = async (reference: string, format: string) => (await service.podman(['image', 'inspect', '--format', format, reference])).trim();
    await roundTrip(
      t,
      { host: service.host, name, id, tempDirectory: temp.path },
      service.host,
      async (reference) => ({ id: `sha256:${await inspect(reference, '{{.Id}}')}`, layers: JSON.parse(await inspect(reference, '{{json .RootFS.Layers}}')) as string[] }),
      () => service.podman(['rmi', name]),
    );
  });
});

/**
 * `berth copy` of the image out of the daemon at `from.host` into a layout, then into the daemon at `to`
 * as the same name (after `between`, which may remove it from a daemon that is both): the ID and layers
 * as `arrived` reads them, and each copy's peak RSS under the limit.
 */
async function roundTrip(
  t: TestContext,
  from: { host: string; name: string; id: string; tempDirectory: string },
  to: string,
  arrived: (reference: string) => Promise<{ id: string; layers: string[] }>,
  between?: () => Promise<unknown>,
): Promise<void> {
  const layout = `oci:${join(from.tempDirectory, 'remote')}:1`;
  const berth = (args: string[]) => measured(process.execPath, [berthMain, 'copy', '--progress', 'none', ...args]);

  const out = await berth(['--daemon-host', from.host, `docker-daemon:${from.name}`, layout]);
  t.diagnostic(`docker-daemon: → oci: ${out.seconds.toFixed(1)} s, peak RSS ${out.peakMiB.toFixed(0)} MiB`);
  // The layout checked each blob against its digest as it was written; the manifest says what they are.
  const manifest = await manifestOf(layout, from.tempDirectory);
  assert.equal(manifest.config.digest, from.id);
  assert.equal(manifest.layers.length, 4);
  const stored = manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
  assert.ok(stored >= mib * 2 ** 20, `the layout holds the whole image (${stored} bytes)`);

  await between?.();
  const back = await berth(['--daemon-host', to, layout, `docker-daemon:${from.name}`]);
  t.diagnostic(`oci: → docker-daemon: ${back.seconds.toFixed(1)} s, peak RSS ${back.peakMiB.toFixed(0)} MiB`);
  const image = await arrived(from.name);
  assert.equal(image.id, from.id);
  assert.deepEqual(
    image.layers,
    manifest.layers.map((layer) => layer.digest),
    'layers are stored as the plain tars, named by their diff_ids',
  );

  assert.ok(out.peakMiB < peakLimitMiB, `out of the daemon: peak RSS ${out.peakMiB.toFixed(0)} MiB`);
  assert.ok(back.peakMiB < peakLimitMiB, `into the daemon: peak RSS ${back.peakMiB.toFixed(0)} MiB`);
}

/** The manifest of the image at a layout location, read through Berth's own store. */
async function manifestOf(location: string, tempDirectory: string): Promise<{ config: Descriptor; layers: Descriptor[] }> {
  const parsed = parseLocation(location);
  const store = await openStore(parsed, { authFiles: [], tempDir: tempDirectory });
  try {
    const manifest = await store.getManifest(parsed.reference);
    return JSON.parse(Buffer.from(manifest.bytes).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  } finally {
    await store.close();
  }
}
