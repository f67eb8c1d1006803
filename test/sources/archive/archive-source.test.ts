import assert from 'node:assert/strict';
import { readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { mediaTypes } from '../../../src/oci/media-types.ts';
import { FsBlobStore } from '../../../src/blobs/fs/fs-blob-store.ts';
import type { Logger } from '../../../src/log.ts';
import { acceptAnything } from '../../../src/oci/accept.ts';
import { parseReference, parseRepositoryName } from '../../../src/oci/names.ts';
import { ArchiveSource } from '../../../src/sources/archive/archive-source.ts';
import { imageIndex, randomImage, type TestImage } from '../../helpers/images.ts';
import { createTestApp, type TestApp, kindSourceFor } from '../../helpers/registry.ts';
import { eventually } from '../../helpers/eventually.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { dockerManifestDigestFor, touch, writeDockerArchive, writeOciArchive } from './fixtures.ts';

interface Fixture {
  app: TestApp;
  dir: string;
  get(url: string, headers?: Record<string, string>): Promise<LightMyRequestResponse>;
  source(): ArchiveSource;
  close(): Promise<void>;
}

async function archiveRegistry(prefix = 'local/', extra: Record<string, unknown> = {}): Promise<Fixture> {
  const archives = await tempDir('berth-archives');
  const app = await createTestApp({
    repositories: [{ prefix, kind: 'archive', directory: archives.path, watch: false, rescanInterval: 0, ...extra }],
  });
  return {
    app,
    dir: archives.path,
    get: (url, headers = {}) => app.app.inject({ method: 'GET', url, headers }),
    source: () => kindSourceFor<ArchiveSource>(app.registry, `${prefix}x`),
    async close() {
      await app.close();
      await archives.remove();
    },
  };
}

async function servedDigest(fixture: Fixture, name: string, reference: string): Promise<string | number> {
  const response = await fixture.get(`/v2/${name}/manifests/${reference}`);
  return response.statusCode === 200 ? String(response.headers['docker-content-digest']) : response.statusCode;
}

describe('archive repositories: name and reference resolution', () => {
  let fixture: Fixture;
  before(async () => (fixture = await archiveRegistry()));
  after(() => fixture.close());

  test('the five rules are tried in the seed order; deleting the winner hands the tag to the next rule', async () => {
    const files = ['team/app/t.oci', 'team/app/other.oci', 'team/app:t.oci', 'team/app:x.oci', 'team/app.oci'];
    const images = files.map(() => randomImage());
    // An earlier-rule archive that lacks the tag is passed over.
    await writeOciArchive(join(fixture.dir, 'team/app/aaa.oci'), [{ image: randomImage(), tags: ['u'] }]);
    for (const [position, file] of files.entries()) {
      await writeOciArchive(join(fixture.dir, file), [{ image: images[position] as TestImage, tags: ['t', `only${position + 1}`] }]);
    }
    for (const [position, file] of files.entries()) {
      assert.equal(await servedDigest(fixture, 'local/team/app', 't'), images[position]?.manifest.digest, `rule ${position + 1} (${file}) wins`);
      await rm(join(fixture.dir, file));
    }
    assert.equal(await servedDigest(fixture, 'local/team/app', 't'), 404);
  });

  test('tags and the catalog come from the same rules', async () => {
    await writeOciArchive(join(fixture.dir, 'cat/app/1.0.oci'), [{ image: randomImage(), tags: ['1.0'] }]);
    await writeOciArchive(join(fixture.dir, 'cat/app:2.0.oci'), [{ image: randomImage(), tags: ['2.0', 'stable'] }]);
    await writeOciArchive(join(fixture.dir, 'cat/app.tar'), [{ image: randomImage(), tags: ['example.com/cat/app:3.0'] }]);
    await writeOciArchive(join(fixture.dir, 'cat/Upper.oci'), [{ image: randomImage(), tags: ['x'] }]);
    const tags = await fixture.get('/v2/local/cat/app/tags/list');
    assert.equal(tags.statusCode, 200);
    assert.deepEqual(tags.json(), { name: 'local/cat/app', tags: ['1.0', '2.0', '3.0', 'stable'] });
    const page = await fixture.get('/v2/local/cat/app/tags/list?n=2&last=1.0');
    assert.deepEqual(page.json().tags, ['2.0', '3.0']);
    await fixture.source().rescan();
    const catalog = (await fixture.get('/v2/_catalog')).json().repositories as string[];
    // cat/app/1.0.oci is also reached as the name cat/app/1.0 (rule 5); a
    // directory holding archives is a name itself (rule 2); Upper is no valid name.
    for (const name of ['local/cat', 'local/cat/app', 'local/cat/app/1.0']) assert.ok(catalog.includes(name), `${name} listed`);
    assert.ok(!catalog.some((name) => name.includes('Upper')));
    assert.deepEqual(catalog, [...catalog].sort());
  });

  test('two archives claiming a tag under one rule: the newest file wins, ties go to the path first in byte order', async () => {
    const [older, newer] = [randomImage(), randomImage()];
    await writeOciArchive(join(fixture.dir, 'tie/b.oci'), [{ image: older, tags: ['t'] }], { mtime: 1_000_000 });
    await writeOciArchive(join(fixture.dir, 'tie/a.oci'), [{ image: newer, tags: ['t'] }], { mtime: 2_000_000 });
    assert.equal(await servedDigest(fixture, 'local/tie', 't'), newer.manifest.digest);
    await touch(join(fixture.dir, 'tie/b.oci'), 3_000_000);
    assert.equal(await servedDigest(fixture, 'local/tie', 't'), older.manifest.digest);
    await touch(join(fixture.dir, 'tie/a.oci'), 3_000_000);
    assert.equal(await servedDigest(fixture, 'local/tie', 't'), newer.manifest.digest, 'a.oci sorts before b.oci');
  });

  test('a newer archive replacing an older one changes the digest served; deleting it purges the name', async () => {
    const [first, second, third] = [randomImage(), randomImage(), randomImage()];
    const path = join(fixture.dir, 'swap.oci');
    await writeOciArchive(path, [{ image: first, tags: ['latest'] }], { mtime: 1_000_000 });
    assert.equal(await servedDigest(fixture, 'local/swap', 'latest'), first.manifest.digest);
    await writeOciArchive(join(fixture.dir, '.swap.oci.partial'), [{ image: second, tags: ['latest'] }]);
    await rename(join(fixture.dir, '.swap.oci.partial'), path);
    assert.equal(await servedDigest(fixture, 'local/swap', 'latest'), second.manifest.digest, 'replaced by rename');
    await writeOciArchive(path, [{ image: third, tags: ['latest'] }]);
    assert.equal(await servedDigest(fixture, 'local/swap', 'latest'), third.manifest.digest, 'rewritten in place');
    const layer = third.layers[0];
    assert.ok(layer !== undefined);
    assert.equal((await fixture.get(`/v2/local/swap/blobs/${first.layers[0]?.digest}`)).statusCode, 404, 'the old layers went with the old archive');
    assert.equal((await fixture.get(`/v2/local/swap/blobs/${layer.digest}`)).statusCode, 200);
    await rm(path);
    const gone = await fixture.get('/v2/local/swap/manifests/latest');
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().errors[0].code, 'NAME_UNKNOWN');
    assert.equal((await fixture.get(`/v2/local/swap/blobs/${layer.digest}`)).statusCode, 404);
  });

  test('a truncated archive is skipped without breaking other archives of the same name or other names', async () => {
    const good = randomImage();
    await writeOciArchive(join(fixture.dir, 'trunc/old.oci'), [{ image: good, tags: ['t'] }], { mtime: 1_000_000 });
    const broken = join(fixture.dir, 'trunc/new.oci');
    await writeOciArchive(broken, [{ image: randomImage({ layerSize: 8192 }), tags: ['t'] }]);
    const copy = join(fixture.dir, 'halfway.oci');
    await writeFile(copy, await readFile(broken));
    await truncate(broken, 5000);
    await truncate(copy, 1234);
    assert.equal(await servedDigest(fixture, 'local/trunc', 't'), good.manifest.digest);
    const half = await fixture.get('/v2/local/halfway/tags/list');
    assert.equal(half.statusCode, 404);
    assert.equal(half.json().errors[0].code, 'NAME_UNKNOWN');
    assert.equal(await servedDigest(fixture, 'local/halfway', 't'), 404);
    await fixture.source().rescan();
    const catalog = (await fixture.get('/v2/_catalog')).json().repositories as string[];
    assert.ok(catalog.includes('local/trunc') && !catalog.includes('local/halfway'));
  });

  test('a manifest reference may be a digest; untagged images are reachable only that way', async () => {
    const image = randomImage();
    await writeOciArchive(join(fixture.dir, 'untagged.oci'), [{ image, tags: [] }]);
    assert.deepEqual((await fixture.get('/v2/local/untagged/tags/list')).json().tags, []);
    const response = await fixture.get(`/v2/local/untagged/manifests/${image.manifest.digest}`);
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], mediaTypes.ociManifest);
    assert.deepEqual(response.rawPayload, image.manifest.bytes);
  });
});

describe('archive repositories: serving', () => {
  let fixture: Fixture;
  before(async () => (fixture = await archiveRegistry('')));
  after(() => fixture.close());

  test('blobs stream from the archive with ranges; HEAD answers the size', async () => {
    const image = randomImage({ layerSize: 300_000 });
    await writeOciArchive(join(fixture.dir, 'blobs.oci'), [{ image, tags: ['1'] }], { dotSlash: true });
    const layer = image.layers[1];
    assert.ok(layer !== undefined);
    const whole = await fixture.get(`/v2/blobs/blobs/${layer.digest}`);
    assert.equal(whole.statusCode, 200);
    assert.equal(whole.headers['docker-content-digest'], layer.digest);
    assert.deepEqual(whole.rawPayload, layer.bytes);
    const part = await fixture.get(`/v2/blobs/blobs/${layer.digest}`, { range: 'bytes=1000-1999' });
    assert.equal(part.statusCode, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-1999/${layer.bytes.length}`);
    assert.deepEqual(part.rawPayload, layer.bytes.subarray(1000, 2000));
    const head = await fixture.app.app.inject({ method: 'HEAD', url: `/v2/blobs/blobs/${image.config.digest}` });
    assert.equal(head.statusCode, 200);
    assert.equal(head.headers['content-length'], String(image.config.bytes.length));
    assert.equal((await fixture.get(`/v2/blobs/blobs/${randomImage().config.digest}`)).json().errors[0].code, 'BLOB_UNKNOWN');
  });

  test('an index is negotiated like hosted ones: clients that take no index get the linux/amd64 image', async () => {
    const [amd64, arm64] = [randomImage(), randomImage()];
    const index = imageIndex([
      { image: arm64, os: 'linux', architecture: 'arm64' },
      { image: amd64, os: 'linux', architecture: 'amd64' },
    ]);
    await writeOciArchive(join(fixture.dir, 'multi.oci'), [{ index: { manifest: index, images: [amd64, arm64] }, tags: ['1'] }]);
    assert.equal((await fixture.get('/v2/multi/manifests/1')).headers['docker-content-digest'], index.digest);
    const single = await fixture.get('/v2/multi/manifests/1', { accept: mediaTypes.ociManifest });
    assert.equal(single.statusCode, 200);
    assert.equal(single.headers['docker-content-digest'], amd64.manifest.digest);
  });

  test('referrers are the archive manifests whose subject is the digest', async () => {
    const subject = randomImage();
    const signature = randomImage({ subject: subject.manifest, artifactType: 'application/vnd.example.sig' });
    await writeOciArchive(join(fixture.dir, 'signed.oci'), [
      { image: subject, tags: ['1'] },
      { image: signature, tags: [] },
    ]);
    const response = await fixture.get(`/v2/signed/referrers/${subject.manifest.digest}`);
    assert.equal(response.statusCode, 200);
    assert.deepEqual(
      response.json().manifests.map((entry: { digest: string; artifactType: string }) => [entry.digest, entry.artifactType]),
      [[signature.manifest.digest, 'application/vnd.example.sig']],
    );
  });

  test('a Docker archive is served as a Docker schema 2 manifest over the exact bytes of its files', async () => {
    const image = randomImage();
    await writeDockerArchive(join(fixture.dir, 'dock.tar'), image, ['example.com/team/dock:1.0', 'dock:latest']);
    assert.deepEqual((await fixture.get('/v2/dock/tags/list')).json().tags, ['1.0', 'latest']);
    const manifest = await fixture.get('/v2/dock/manifests/1.0');
    assert.equal(manifest.statusCode, 200);
    assert.equal(manifest.headers['content-type'], mediaTypes.dockerManifest);
    assert.equal(manifest.headers['docker-content-digest'], dockerManifestDigestFor(image));
    for (const blob of [image.config, ...image.layers]) {
      assert.deepEqual((await fixture.get(`/v2/dock/blobs/${blob.digest}`)).rawPayload, blob.bytes);
    }
  });

  test('a gzip-compressed archive is extracted once into the blob store and served from there', async () => {
    const image = randomImage({ layerSize: 50_000 });
    await writeOciArchive(join(fixture.dir, 'zipped.oci.gz'), [{ image, tags: ['1'] }], { gzip: true });
    await writeDockerArchive(join(fixture.dir, 'zipdock.tgz'), randomImage(), ['zipdock:1'], { gzip: true });
    assert.equal(await servedDigest(fixture, 'zipped', '1'), image.manifest.digest);
    assert.equal((await fixture.get('/v2/zipdock/manifests/1')).statusCode, 200);
    const layer = image.layers[0];
    assert.ok(layer !== undefined);
    assert.equal(await fixture.app.registry.blobs.stat(layer.digest), layer.bytes.length);
    assert.deepEqual((await fixture.get(`/v2/zipped/blobs/${layer.digest}`)).rawPayload, layer.bytes);
    // Extracted blobs are not linked in metadata, so GC may take them: they come back.
    await fixture.app.registry.blobs.delete(layer.digest);
    assert.deepEqual((await fixture.get(`/v2/zipped/blobs/${layer.digest}`)).rawPayload, layer.bytes);
    // A gzip stream cut short is a damaged archive like any other.
    const cut = join(fixture.dir, 'cut.tgz');
    await writeOciArchive(cut, [{ image: randomImage({ layerSize: 100_000 }), tags: ['1'] }], { gzip: true });
    await truncate(cut, 40_000);
    assert.equal(await servedDigest(fixture, 'cut', '1'), 404);
  });

  test('writes answer UNSUPPORTED: the repository is read-only', async () => {
    const image = randomImage();
    await writeOciArchive(join(fixture.dir, 'ro.oci'), [{ image, tags: ['1'] }]);
    const attempts = [
      { method: 'POST', url: '/v2/ro/blobs/uploads/' },
      { method: 'PUT', url: '/v2/ro/manifests/2', headers: { 'content-type': image.manifest.mediaType }, payload: image.manifest.bytes },
      { method: 'DELETE', url: '/v2/ro/manifests/1' },
      { method: 'DELETE', url: `/v2/ro/blobs/${image.config.digest}` },
      // A name no archive holds is just as read-only.
      { method: 'POST', url: '/v2/brand-new/blobs/uploads/' },
      { method: 'PUT', url: '/v2/brand-new/manifests/1', headers: { 'content-type': image.manifest.mediaType }, payload: image.manifest.bytes },
    ] as const;
    for (const attempt of attempts) {
      const response = await fixture.app.app.inject(attempt);
      assert.equal(response.statusCode, 405, `${attempt.method} ${attempt.url}`);
      assert.equal(response.json().errors[0].code, 'UNSUPPORTED');
      assert.match(response.json().errors[0].message, /read-only/);
    }
    assert.equal(await servedDigest(fixture, 'ro', '1'), image.manifest.digest);
  });

  test('a name with no archive is unknown', async () => {
    const response = await fixture.get('/v2/nothing/here/manifests/1');
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().errors[0].code, 'NAME_UNKNOWN');
  });
});

describe('archive repositories: damaged archives', () => {
  test('are warned about once per version, naming the file, and answer as if absent', async () => {
    const [archives, data] = [await tempDir('berth-archives'), await tempDir('berth-data')];
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, error() {}, warn: (_fields, message) => void warnings.push(message ?? ''), child: () => logger };
    const bad = join(archives.path, 'bad.oci');
    await writeOciArchive(bad, [{ image: randomImage(), tags: ['1'] }]);
    await truncate(bad, 2000);
    const source = new ArchiveSource(
      { prefix: '', directory: archives.path, rescanInterval: 0, watch: false, maxManifestBytes: 4 * 1024 * 1024 },
      await FsBlobStore.open(data.path),
      logger,
    );
    try {
      await source.rescan();
      const repository = await source.open(parseRepositoryName('bad'));
      await assert.rejects(repository.manifest(parseReference('1'), acceptAnything), { code: 'MANIFEST_UNKNOWN' });
      await assert.rejects(repository.tags({}), { code: 'NAME_UNKNOWN' });
      assert.equal(warnings.filter((message) => message.includes(bad)).length, 1, warnings.join('\n'));
      assert.match(warnings[0] ?? '', /claims \d+ bytes but the archive ends|ends at byte/);
    } finally {
      await source.close();
      await archives.remove();
      await data.remove();
    }
  });
});

describe('archive repositories: directory watching', () => {
  test('a new archive appears in the catalog without a request for it; a deleted one leaves it', async () => {
    const fixture = await archiveRegistry('w/', { watch: true });
    try {
      await fixture.source().rescan();
      await writeOciArchive(join(fixture.dir, 'watched.oci'), [{ image: randomImage(), tags: ['1'] }]);
      await eventually(async () => ((await fixture.get('/v2/_catalog')).json().repositories as string[]).includes('w/watched'), { timeout: 20_000 });
      await rm(join(fixture.dir, 'watched.oci'));
      await eventually(async () => !((await fixture.get('/v2/_catalog')).json().repositories as string[]).includes('w/watched'), { timeout: 20_000 });
    } finally {
      await fixture.close();
    }
  });
});
