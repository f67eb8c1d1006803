import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { parseDigest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { call } from '../helpers/http.ts';
import { pushImage, pushManifest } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { writeOciArchive } from '../sources/archive/fixtures.ts';
import { buildDroplet, writeRootfs } from '../sources/droplet/fixtures.ts';
import { runReadContract, sharedFixture, type ReadFixture, type SharedFixture } from './read-contract.ts';

const shared = sharedFixture();

/** Why hosted repositories (and caches of them) answer MANIFEST_UNKNOWN for a name that holds nothing: the answer users have always had. */
const hostedUnknownName = 'a hosted manifest lookup does not ask whether the repository exists (the tag list does: NAME_UNKNOWN)';

/** The parts of a ReadFixture every kind holding the shared fixture has. */
function holding(url: string, name: string, fixture: SharedFixture, unknown: Pick<ReadFixture, 'unknownName' | 'unknownNameManifest'>, close: () => Promise<void>): ReadFixture {
  const { image, referrer, artifactType } = fixture;
  return {
    url,
    name,
    tags: fixture.tags,
    tag: fixture.tags[0] as string,
    manifest: image.manifest,
    blob: image.layers[0] as ReadFixture['blob'],
    referrers: { kind: 'listed', subject: image.manifest.digest, digest: referrer.manifest.digest, artifactType },
    ...unknown,
    close,
  };
}

/** Pushes the shared fixture: the image under each tag, and its signature. */
async function pushShared(registry: TestRegistry, name: string): Promise<void> {
  const [first, ...others] = shared.tags;
  await pushImage(registry.url, name, first as string, shared.image);
  for (const tag of others) await pushManifest(registry.url, name, tag, shared.image.manifest);
  await pushImage(registry.url, name, shared.referrer.manifest.digest, shared.referrer);
}

runReadContract('hosted', async () => {
  const registry = await startTestRegistry();
  await pushShared(registry, 'team/app');
  const unknown = { unknownName: 'team/nothing', unknownNameManifest: { code: 'MANIFEST_UNKNOWN', because: hostedUnknownName } } as const;
  return holding(registry.url, 'team/app', shared, unknown, () => registry.close());
});

runReadContract('proxy', async () => {
  const upstream = await startTestRegistry();
  await pushShared(upstream, 'library/app');
  const proxy = await startTestRegistry({ repositories: [{ prefix: 'up/', kind: 'proxy', upstream: upstream.url }] });
  const unknown = {
    unknownName: 'up/library/nothing',
    unknownNameManifest: { code: 'MANIFEST_UNKNOWN', because: `the upstream's answer, passed on (${hostedUnknownName})` },
  } as const;
  return holding(proxy.url, 'up/library/app', shared, unknown, async () => {
    await proxy.close();
    await upstream.close();
  });
});

runReadContract('archive', async () => {
  const directory = await tempDir('berth-read-archive');
  await writeOciArchive(join(directory.path, 'app.oci'), [
    { image: shared.image, tags: [...shared.tags] },
    { image: shared.referrer, tags: [] },
  ]);
  const registry = await startTestRegistry({ repositories: [{ prefix: 'arch/', kind: 'archive', directory: directory.path, watch: false }] });
  return holding(registry.url, 'arch/app', shared, { unknownName: 'arch/nothing', unknownNameManifest: { code: 'NAME_UNKNOWN' } }, async () => {
    await registry.close();
    await directory.remove();
  });
});

const guids = ['3f1b6c1e-6a53-4c55-9a43-2f5c0c5b5a11', '9d2e7f00-1b2c-4d3e-8f40-5a6b7c8d9e0f'];

// A droplet repository composes its images (rootfs + droplet) itself: it cannot hold the shared
// image, so it is read with what it makes of two uploaded droplets; tags are the droplets' guids and latest.
runReadContract(
  'droplet',
  async () => {
    const files = await tempDir('berth-read-droplet');
    const rootfs = join(files.path, 'rootfs.tar.gz');
    await writeRootfs(rootfs, 'one', true);
    const registry = await startTestRegistry({ repositories: [{ prefix: 'cf/', kind: 'droplet', rootfs, rootfsCheckInterval: 0 }] });
    const name = 'cf/dev/shop';
    let layer = '';
    for (const [position, guid] of guids.entries()) {
      const uploaded = await fetch(`${registry.url}/v2/${name}/blobs/?guid=${guid}`, { method: 'POST', body: await buildDroplet({ greeting: `hello ${position}` }) });
      if (uploaded.status !== 201) throw new Error(`droplet upload failed: ${uploaded.status} ${await uploaded.text()}`);
      layer = await uploaded.text();
    }
    const manifest = await call(registry.url, 'GET', `/v2/${name}/manifests/latest`, { headers: { accept: mediaTypes.ociManifest } });
    const blob = await call(registry.url, 'GET', `/v2/${name}/blobs/${layer}`);
    if (`sha256:${createHash('sha256').update(blob.body).digest('hex')}` !== layer) throw new Error('the droplet layer does not match its digest');
    return {
      url: registry.url,
      name,
      tags: [...guids, 'latest'].sort(),
      tag: 'latest',
      manifest: { digest: parseDigest(manifest.headers.get('docker-content-digest') ?? ''), mediaType: mediaTypes.ociManifest, bytes: manifest.body },
      blob: { digest: parseDigest(layer), bytes: blob.body },
      referrers: { kind: 'none', because: 'droplet images are composed on pull; nothing is stored that could name them as its subject' },
      unknownName: 'cf/dev/nothing',
      unknownNameManifest: { code: 'NAME_UNKNOWN' },
      close: async () => {
        await registry.close();
        await files.remove();
      },
    };
  },
  { skip: missingCommands('busybox', 'bash-static') },
);
