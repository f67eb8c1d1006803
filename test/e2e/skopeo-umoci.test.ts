import assert from 'node:assert/strict';
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { call } from '../helpers/http.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';

const skip = missingCommands('skopeo', 'umoci');

interface LayoutIndex {
  manifests: { mediaType: string; digest: string; size: number; annotations?: Record<string, string>; platform?: Record<string, string> }[];
}

/**
 * The whole life of an image through real clients: built with umoci, pushed
 * and pulled with skopeo, unpacked again and compared file by file.
 */
describe('skopeo and umoci round trip', { skip }, () => {
  let registry: TestRegistry;
  let work: { path: string; remove(): Promise<void> };
  let layout: string;
  let bundle: string;
  const tls = '--tls-verify=false';

  before(async () => {
    registry = await startTestRegistry({}, { captureLogs: true });
    work = await tempDir('berth-e2e');
    layout = join(work.path, 'layout');
    bundle = join(work.path, 'bundle');
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:v1`]);
    await run('umoci', ['unpack', '--rootless', '--image', `${layout}:v1`, bundle]);
    const rootfs = join(bundle, 'rootfs');
    await mkdir(join(rootfs, 'app/data'), { recursive: true });
    await writeFile(join(rootfs, 'app/hello.txt'), 'hello from layer one\n');
    await writeFile(join(rootfs, 'app/run.sh'), '#!/bin/sh\necho run\n');
    await chmod(join(rootfs, 'app/run.sh'), 0o755);
    await run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
    // A repack diffs against the bundle's base: unpack again so the next change is a layer of its own.
    await rm(bundle, { recursive: true });
    await run('umoci', ['unpack', '--rootless', '--image', `${layout}:v1`, bundle]);
    await writeFile(join(rootfs, 'app/data/big.bin'), Buffer.alloc(3 * 1024 * 1024, 7));
    await symlink('hello.txt', join(rootfs, 'app/link.txt'));
    await writeFile(join(rootfs, 'app/hello.txt'), 'hello from layer two\n');
    await run('umoci', ['repack', '--image', `${layout}:v1`, bundle]);
    await run('umoci', ['config', '--image', `${layout}:v1`, '--config.cmd', '/app/run.sh', '--config.env', 'GREETING=hi']);
    // A second platform, then an index over both, as a multi-platform build leaves it.
    await run('umoci', ['new', '--image', `${layout}:arm`]);
    await run('umoci', ['config', '--image', `${layout}:arm`, '--architecture', 'arm64', '--config.cmd', '/bin/true']);
    await addIndex(layout, 'multi', ['v1', 'arm']);
  });

  after(async () => {
    await registry?.close();
    await work?.remove();
  });

  it('pushes a multi-layer image and inspects it', async () => {
    await run('skopeo', ['copy', `--dest-tls-verify=false`, `oci:${layout}:v1`, `docker://${registry.host}/e2e/app:v1`]);
    const inspected = JSON.parse(await run('skopeo', ['inspect', tls, `docker://${registry.host}/e2e/app:v1`])) as {
      Digest: string;
      Layers: string[];
      Env: string[];
    };
    assert.equal(inspected.Digest, await layoutDigest(layout, 'v1'));
    assert.equal(inspected.Layers.length, 2);
    assert.ok(inspected.Env.includes('GREETING=hi'));
  });

  it('pushes a two-platform index with --all and keeps its digest', async () => {
    await run('skopeo', ['copy', '--all', '--dest-tls-verify=false', `oci:${layout}:multi`, `docker://${registry.host}/e2e/app:multi`]);
    const raw = await run('skopeo', ['inspect', '--raw', tls, `docker://${registry.host}/e2e/app:multi`]);
    assert.equal(digestOf(Buffer.from(raw)), await layoutDigest(layout, 'multi'));
    assert.equal((JSON.parse(raw) as { mediaType: string }).mediaType, mediaTypes.ociIndex);
  });

  it('copies between repositories by mounting the layers', async () => {
    await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry.host}/e2e/app:v1`, `docker://${registry.host}/e2e/copy:v1`]);
    const mounts = registry.logs.filter((line) => line['method'] === 'POST' && String(line['path']).includes('/e2e/copy/') && String(line['path']).includes('mount='));
    assert.equal(mounts.length, 2, 'skopeo mounts both layers');
    assert.ok(mounts.every((line) => line['status'] === 201));
    // skopeo re-sends the small config blob; layer bytes are never sent again.
    const uploads = registry.logs.filter((line) => line['method'] === 'PATCH' && String(line['path']).includes('/e2e/copy/'));
    assert.ok(uploads.length <= 1, `only the config may be uploaded, saw ${uploads.length} uploads`);
  });

  it('lists tags', async () => {
    const listed = JSON.parse(await run('skopeo', ['list-tags', tls, `docker://${registry.host}/e2e/app`])) as { Tags: string[] };
    assert.deepEqual(listed.Tags, ['multi', 'v1']);
  });

  it('pulls back into an OCI layout and unpacks to the same files', async () => {
    const pulled = join(work.path, 'pulled');
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry.host}/e2e/copy:v1`, `oci:${pulled}:v1`]);
    const unpacked = join(work.path, 'unpacked');
    await run('umoci', ['unpack', '--rootless', '--image', `${pulled}:v1`, unpacked]);
    const original = join(bundle, 'rootfs');
    const copy = join(unpacked, 'rootfs');
    // diff -r compares contents and follows the symlink; -q stays quiet when equal.
    assert.equal(await run('diff', ['-r', '--no-dereference', original, copy]), '');
    assert.equal(await readFile(join(copy, 'app/hello.txt'), 'utf8'), 'hello from layer two\n');
    assert.equal(await run('readlink', [join(copy, 'app/link.txt')]), 'hello.txt\n');
    const mode = (await run('stat', ['-c', '%a', join(copy, 'app/run.sh')])).trim();
    assert.equal(mode, '755');
  });

  it('pulls the whole index back with --all', async () => {
    const pulled = join(work.path, 'pulled-multi');
    await run('skopeo', ['copy', '--all', '--src-tls-verify=false', `docker://${registry.host}/e2e/app:multi`, `oci:${pulled}:multi`]);
    assert.equal(await layoutDigest(pulled, 'multi'), await layoutDigest(layout, 'multi'));
  });

  it('deletes by tag (the tag only) and by digest (the manifest)', async () => {
    await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${registry.host}/e2e/app:v1`, `docker://${registry.host}/e2e/app:extra`]);
    assert.equal((await call(registry.url, 'DELETE', '/v2/e2e/app/manifests/extra')).status, 202);
    const afterTag = JSON.parse(await run('skopeo', ['list-tags', tls, `docker://${registry.host}/e2e/app`])) as { Tags: string[] };
    assert.deepEqual(afterTag.Tags, ['multi', 'v1']);
    const digest = await layoutDigest(layout, 'v1');
    await run('skopeo', ['delete', tls, `docker://${registry.host}/e2e/app@${digest}`]);
    const afterDigest = JSON.parse(await run('skopeo', ['list-tags', tls, `docker://${registry.host}/e2e/app`])) as { Tags: string[] };
    assert.deepEqual(afterDigest.Tags, ['multi']);
    await assert.rejects(run('skopeo', ['inspect', tls, `docker://${registry.host}/e2e/app:v1`]), /manifest unknown/i);
    // The other repository keeps its copy.
    assert.equal((await call(registry.url, 'HEAD', `/v2/e2e/copy/manifests/${digest}`)).status, 200);
  });
});

async function layoutDigest(layout: string, tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as LayoutIndex;
  const entry = index.manifests.find((manifest) => manifest.annotations?.['org.opencontainers.image.ref.name'] === tag);
  assert.ok(entry, `no ${tag} in ${layout}`);
  return entry.digest;
}

/** Adds to an OCI layout an image index over the images tagged `tags`, itself tagged `name`. */
async function addIndex(layout: string, name: string, tags: string[]): Promise<void> {
  const indexPath = join(layout, 'index.json');
  const top = JSON.parse(await readFile(indexPath, 'utf8')) as LayoutIndex;
  const children = [];
  for (const tag of tags) {
    const entry = top.manifests.find((manifest) => manifest.annotations?.['org.opencontainers.image.ref.name'] === tag);
    assert.ok(entry);
    const manifest = JSON.parse(await readFile(join(layout, 'blobs', ...entry.digest.split(':')), 'utf8')) as { config: { digest: string } };
    const config = JSON.parse(await readFile(join(layout, 'blobs', ...manifest.config.digest.split(':')), 'utf8')) as { os: string; architecture: string };
    children.push({ mediaType: entry.mediaType, digest: entry.digest, size: entry.size, platform: { os: config.os, architecture: config.architecture } });
  }
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: children }));
  const digest = digestOf(bytes);
  await writeFile(join(layout, 'blobs', ...digest.split(':')), bytes);
  top.manifests.push({ mediaType: mediaTypes.ociIndex, digest, size: bytes.length, annotations: { 'org.opencontainers.image.ref.name': name } });
  await writeFile(`${indexPath}.tmp`, JSON.stringify(top));
  await rename(`${indexPath}.tmp`, indexPath);
}
