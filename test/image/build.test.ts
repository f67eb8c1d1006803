import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.ts';
import { projectRoot } from '../../scripts/image/bundle.ts';
import { buildImage, nodeFlags, refAnnotations, sourceDateEpoch, type BuiltImage } from '../../scripts/image/build.ts';
import { imagePaths, imageUser } from '../../scripts/image/compose.ts';
import { storeLayer, type LayerEntry } from '../../scripts/image/layer.ts';
import { hostPlatform, platforms } from '../../scripts/image/platform.ts';
import { imageBuildUnavailable, imageCacheDir, sharedBerthImage, testImageName } from '../helpers/berth-image.ts';
import { tempDir } from '../helpers/tmp.ts';
import { run } from '../helpers/tools.ts';
import { elfInfo, readArchive, readRootfs, resolveInRootfs, type RootfsEntry } from './read-image.ts';

describe('image layers', () => {
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let blobs: FsBlobStore;
  before(async () => {
    temp = await tempDir('berth-layer');
    blobs = await FsBlobStore.open(temp.path);
  });
  after(() => temp.remove());

  const entries: LayerEntry[] = [
    { type: 'file', path: 'opt/app/b.txt', mode: 0o644, bytes: Buffer.from('b') },
    { type: 'symlink', path: 'usr/lib64', target: 'lib' },
    { type: 'directory', path: 'var/data', mode: 0o750, uid: 65532, gid: 65532 },
    { type: 'file', path: 'opt/app-x', mode: 0o755, size: 1, open: () => Readable.from([Buffer.from('x')]) },
  ];
  const gzipOf = async (digest: Parameters<FsBlobStore['open']>[0]) => {
    const chunks: Buffer[] = [];
    for await (const chunk of await blobs.open(digest)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };
  const headersOf = async (digest: Parameters<FsBlobStore['open']>[0]) => {
    const extract = tar.extract();
    Readable.from([gunzipSync(await gzipOf(digest))]).pipe(extract);
    const headers: tar.Header[] = [];
    for await (const entry of extract) {
      headers.push(entry.header);
      entry.resume();
    }
    return headers;
  };

  it('are the same bytes whatever order the entries come in, with parents first and fixed times and owners', async () => {
    const mtime = new Date('2026-01-02T03:04:05Z');
    const one = await storeLayer(blobs, entries, mtime);
    const two = await storeLayer(blobs, [...entries].reverse(), mtime);
    assert.deepEqual(one, two);
    const headers = await headersOf(one.digest);
    assert.deepEqual(
      headers.map((header) => header.name),
      ['opt/', 'opt/app/', 'opt/app-x', 'opt/app/b.txt', 'usr/', 'usr/lib64', 'var/', 'var/data/'],
    );
    for (const header of headers) {
      assert.equal(header.mtime?.getTime(), mtime.getTime(), header.name);
      assert.equal(header.uname, '', header.name);
      assert.equal(header.uid, header.name === 'var/data/' ? 65532 : 0, header.name);
    }
    assert.equal((await gzipOf(one.digest)).readUInt32LE(4), 0, 'no timestamp in the gzip header');
  });

  it('change with the time they are given (SOURCE_DATE_EPOCH)', async () => {
    const one = await storeLayer(blobs, entries, new Date(0));
    const two = await storeLayer(blobs, entries, new Date(1000));
    assert.notEqual(one.digest, two.digest);
    assert.notEqual(one.diffId, two.diffId);
  });

  it('refuses a path given twice or an unclean path', async () => {
    await assert.rejects(storeLayer(blobs, [entries[0] as LayerEntry, entries[0] as LayerEntry], new Date(0)), /given twice/);
    await assert.rejects(storeLayer(blobs, [{ type: 'directory', path: '../etc', mode: 0o755 }], new Date(0)), /not a clean relative path/);
  });
});

describe('the time every file of the image carries', () => {
  const saved = process.env['SOURCE_DATE_EPOCH'];
  after(() => {
    if (saved === undefined) delete process.env['SOURCE_DATE_EPOCH'];
    else process.env['SOURCE_DATE_EPOCH'] = saved;
  });

  it('is SOURCE_DATE_EPOCH when set, else the time of the commit checked out', async () => {
    process.env['SOURCE_DATE_EPOCH'] = '1700000000';
    assert.equal(await sourceDateEpoch(), 1700000000);
    process.env['SOURCE_DATE_EPOCH'] = '2023-11-14';
    await assert.rejects(sourceDateEpoch(), /whole seconds/);
    delete process.env['SOURCE_DATE_EPOCH'];
    assert.equal(await sourceDateEpoch(), Number((await run('git', ['log', '-1', '--format=%ct'], { cwd: projectRoot })).trim()));
  });
});

describe('the name an archive gives the image', () => {
  it('is the given name for podman and skopeo, and a full Docker reference for docker load and ctr', () => {
    const cases = [
      ['berth:0.1.0', 'docker.io/library/berth:0.1.0'],
      ['team/berth:1', 'docker.io/team/berth:1'],
      ['registry.example.com/berth:0.1.0', 'registry.example.com/berth:0.1.0'],
      ['localhost/berth:test', 'localhost/berth:test'],
    ];
    for (const [name, full] of cases) {
      assert.deepEqual(refAnnotations(name as string), { 'io.containerd.image.name': full, 'org.opencontainers.image.ref.name': name });
    }
  });
});

describe('npm run image', { skip: imageBuildUnavailable() }, () => {
  let built: BuiltImage;
  before(async () => {
    built = await sharedBerthImage();
  });

  it('names the image in the archive and describes it with OCI labels, a numeric user, port 5000 and the data volume', async () => {
    const archive = await readArchive(built.output);
    const [entry] = archive.index.manifests;
    assert.equal(entry?.digest, built.digest);
    assert.equal(entry?.annotations?.['org.opencontainers.image.ref.name'], testImageName);
    const manifest = archive.json(built.digest) as { config: { digest: string } };
    const config = archive.json(manifest.config.digest) as { architecture: string; created: string; config: Record<string, unknown> };
    assert.equal(config.architecture, hostPlatform().architecture);
    assert.equal(config.created, built.created.toISOString());
    const runtime = config.config as { User: string; ExposedPorts: object; Volumes: object; Entrypoint: string[]; Cmd: string[]; Labels: Record<string, string> };
    assert.equal(runtime.User, `${imageUser.uid}:${imageUser.gid}`);
    assert.deepEqual(runtime.ExposedPorts, { '5000/tcp': {} });
    assert.deepEqual(runtime.Volumes, { [imagePaths.data]: {} });
    assert.deepEqual(runtime.Entrypoint, [imagePaths.node, ...(await nodeFlags()), `${imagePaths.app}/main.mjs`]);
    assert.deepEqual(runtime.Cmd, ['serve', '--config', imagePaths.config]);
    const { version } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(runtime.Labels['org.opencontainers.image.version'], version);
    assert.equal(runtime.Labels['org.opencontainers.image.title'], 'berth');
    assert.equal(runtime.Labels['org.opencontainers.image.created'], built.created.toISOString());
    assert.match(runtime.Labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}(-dirty)?$/);
  });

  it('is at most 80 MB compressed', () => {
    for (const image of built.images) assert.ok(image.compressedBytes <= 80e6, `${image.platform}: ${image.compressedBytes} bytes`);
  });

  it('holds the bundled app, Node and Debian libraries, nothing from node_modules or the TypeScript sources, all root-owned at one time', async () => {
    const archive = await readArchive(built.output);
    const rootfs = await readRootfs(archive, built.digest, () => false);
    const paths = [...rootfs.keys()];
    assert.ok(rootfs.has(`${imagePaths.app}/main.mjs`));
    assert.ok(rootfs.has(`${imagePaths.app}/password-worker.mjs`), 'the password worker is bundled as a file of its own');
    assert.ok(rootfs.has(imagePaths.config));
    assert.ok(rootfs.has(`${imagePaths.app}/THIRD-PARTY-NOTICES`), 'the licences of the bundled npm packages');
    assert.ok(rootfs.has('/etc/ssl/certs/ca-certificates.crt'));
    assert.deepEqual(
      paths.filter((path) => /node_modules|\.ts$|\/test\//.test(path)),
      [],
    );
    assert.deepEqual(
      paths.filter((path) => /\/gconv\/|^\/usr\/share\/(man|locale)\//.test(path)),
      [],
      'what a server never reads is left out',
    );
    for (const [path, entry] of rootfs) {
      assert.equal(entry.mtime, built.created.getTime(), path);
      const owner = path === imagePaths.data ? imageUser.uid : 0;
      assert.equal(entry.uid, owner, path);
    }
    assert.equal((rootfs.get('/tmp')?.mode ?? 0) & 0o7777, 0o1777);
    const passwd = await readRootfs(archive, built.digest, (path) => path === '/etc/passwd');
    assert.match(passwd.get('/etc/passwd')?.bytes?.toString() ?? '', new RegExp(`^berth:x:${imageUser.uid}:${imageUser.gid}:`, 'm'));
  });

  it('gives the same digest when built again, and carries for arm64 too what its Node binary loads', { timeout: 600_000 }, async () => {
    const temp = await tempDir('berth-image-again');
    try {
      const other = Object.values(platforms).filter((platform) => platform.name !== hostPlatform().name);
      const again = await buildImage({
        output: join(temp.path, 'again.oci'),
        platforms: [hostPlatform(), ...other],
        name: testImageName,
        cacheDir: imageCacheDir,
        sourceDateEpoch: built.created.getTime() / 1000,
        // The same commit: a commit made while the tests run must not count as a difference.
        ...(built.revision === undefined ? {} : { revision: built.revision }),
      });
      assert.equal(again.images[0]?.manifest, built.digest, 'the host platform image is the same, byte for byte');
      assert.equal(again.mediaType, 'application/vnd.oci.image.index.v1+json');
      const archive = await readArchive(again.output);
      for (const image of again.images) {
        const platform = platforms[image.platform];
        assert.ok(platform !== undefined);
        const rootfs = await readRootfs(archive, image.manifest, (path) => path === imagePaths.node || /\/lib[^/]*\/.*\.so/.test(path));
        assertLoadable(rootfs, imagePaths.node, platform.elfMachine);
      }
    } finally {
      await temp.remove();
    }
  });
});

/** The binary's interpreter and every library it needs, transitively, are in the image and built for its machine. */
function assertLoadable(rootfs: Map<string, RootfsEntry>, binary: string, machine: number): void {
  const libraryDirs = [...new Set([...rootfs.keys()].filter((path) => /^\/(usr\/)?lib\/[a-z0-9_]+-linux-gnu$/.test(path)))];
  const seen = new Set<string>();
  const check = (path: string, what: string): void => {
    const found = resolveInRootfs(rootfs, path);
    assert.ok(found?.entry.bytes !== undefined, `${what}: ${path} is not in the image`);
    if (seen.has(found.path)) return;
    seen.add(found.path);
    const info = elfInfo(found.entry.bytes);
    assert.equal(info.machine, machine, `${found.path} is for ELF machine ${info.machine}`);
    if (info.interpreter !== undefined) check(info.interpreter, `${found.path}'s interpreter`);
    for (const library of info.needed) {
      const location = libraryDirs.map((dir) => `${dir}/${library}`).find((candidate) => resolveInRootfs(rootfs, candidate) !== undefined);
      assert.ok(location !== undefined, `${found.path} needs ${library}, which is in none of ${libraryDirs.join(', ')}`);
      check(location, `${found.path} needs ${library}`);
    }
  };
  check(binary, 'the binary');
  assert.ok(seen.size >= 6, `only ${[...seen].join(', ')}`);
}
