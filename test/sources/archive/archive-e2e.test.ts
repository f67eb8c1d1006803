import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { startTestRegistry, type TestRegistry } from '../../helpers/registry.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { missingCommands, run } from '../../helpers/tools.ts';

interface Layout {
  index: { manifests: { digest: string; annotations?: Record<string, string> }[] };
  blob(digest: string): Promise<Record<string, unknown>>;
}

async function readLayout(directory: string): Promise<Layout> {
  return {
    index: JSON.parse(await readFile(join(directory, 'index.json'), 'utf8')),
    blob: async (digest) => JSON.parse(await readFile(join(directory, 'blobs', digest.replace(':', '/')), 'utf8')),
  };
}

function digestTagged(layout: Layout, tag: string): string {
  const entry = layout.index.manifests.find((manifest) => manifest.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry !== undefined, `tag ${tag} in layout`);
  return entry.digest;
}

describe('archives made by skopeo, umoci and tar, pulled back through Berth with skopeo', { skip: missingCommands('skopeo', 'umoci', 'tar') }, () => {
  let work: { path: string; remove(): Promise<void> };
  let registry: TestRegistry;
  let source: Layout;
  const layout = () => join(work.path, 'layout');

  before(async () => {
    work = await tempDir('berth-archive-e2e');
    const archives = join(work.path, 'archives');
    await mkdir(join(archives, 'team'), { recursive: true });
    // An image of two layers, built rootless with umoci.
    await run('umoci', ['init', '--layout', layout()]);
    await run('umoci', ['new', '--image', `${layout()}:base`]);
    const bundle = join(work.path, 'bundle');
    await run('umoci', ['unpack', '--rootless', '--image', `${layout()}:base`, bundle]);
    await writeFile(join(bundle, 'rootfs', 'hello.txt'), 'hello from an archive\n');
    await run('umoci', ['repack', '--image', `${layout()}:1.0`, bundle]);
    // repack diffs against what was unpacked: a second layer needs a second unpack.
    const second = join(work.path, 'bundle2');
    await run('umoci', ['unpack', '--rootless', '--image', `${layout()}:1.0`, second]);
    await writeFile(join(second, 'rootfs', 'second.txt'), 'a second layer\n');
    await run('umoci', ['repack', '--image', `${layout()}:1.0`, second]);

    await run('skopeo', ['copy', `oci:${layout()}:1.0`, `oci-archive:${join(archives, 'team', 'app.oci')}:1.0`]);
    await run('skopeo', ['copy', `oci:${layout()}:1.0`, `docker-archive:${join(archives, 'dock.tar')}:example.com/dock:2.0`]);
    await run('tar', ['-C', layout(), '-cf', join(archives, 'umoci.oci'), '.']);
    await writeFile(join(archives, 'zipped.oci.gz'), gzipSync(await readFile(join(archives, 'team', 'app.oci'))));
    await copyFile(join(archives, 'team', 'app.oci'), join(archives, 'team', 'app:old.oci'));
    source = await readLayout(layout());
    registry = await startTestRegistry({ repositories: [{ prefix: '', kind: 'archive', directory: archives, watch: false }] });
  });
  after(async () => {
    await registry?.close();
    await work?.remove();
  });

  /** Copies name:tag out of Berth into an OCI layout (skopeo verifies every blob digest on the way) and reads it. */
  async function pull(reference: string): Promise<Layout> {
    const out = join(work.path, `pulled-${reference.replace(/[/:]/g, '_')}`);
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/${reference}`, `oci:${out}:pulled`]);
    return readLayout(out);
  }

  for (const [reference, tag] of [
    ['team/app:1.0', '1.0'],
    ['umoci:1.0', '1.0'],
    ['umoci:base', 'base'],
    ['zipped:1.0', '1.0'],
  ] as const) {
    test(`${reference}: the manifest digest pulled is the one the image was built with`, async () => {
      const pulled = await pull(reference);
      assert.equal(pulled.index.manifests[0]?.digest, digestTagged(source, tag));
    });
  }

  test('docker-archive: config and uncompressed layers keep their digests (layer digests are the diff IDs)', async () => {
    const original = await source.blob(digestTagged(source, '1.0'));
    const originalConfig = original['config'] as { digest: string };
    const raw = JSON.parse(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${registry.host}/dock:2.0`]));
    assert.equal(raw.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.equal(raw.config.digest, originalConfig.digest);
    const config = await source.blob(originalConfig.digest);
    const diffIds = (config['rootfs'] as { diff_ids: string[] }).diff_ids;
    assert.equal(diffIds.length, 2);
    assert.deepEqual(
      raw.layers.map((layer: { digest: string; mediaType: string }) => [layer.digest, layer.mediaType]),
      diffIds.map((diffId) => [diffId, 'application/vnd.docker.image.rootfs.diff.tar']),
    );
    // dir: keeps the manifest as served (oci: would convert it); skopeo checks every blob's digest.
    const out = join(work.path, 'pulled-dock');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/dock:2.0`, `dir:${out}`]);
    assert.deepEqual(JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')), raw);
    assert.deepEqual(await source.blob(originalConfig.digest), JSON.parse(await readFile(join(out, originalConfig.digest.slice(7)), 'utf8')));
  });

  test('skopeo lists the tags the rules reach', async () => {
    const tags = JSON.parse(await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/team/app`]));
    assert.deepEqual(tags.Tags, ['1.0']);
    const umoci = JSON.parse(await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry.host}/umoci`]));
    assert.deepEqual(umoci.Tags, ['1.0', 'base']);
  });

  test('pushing to an archive name is refused with UNSUPPORTED', async () => {
    await assert.rejects(
      run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout()}:1.0`, `docker://${registry.host}/team/app:new`]),
      /405|UNSUPPORTED|read-only|not supported/i,
    );
  });
});
