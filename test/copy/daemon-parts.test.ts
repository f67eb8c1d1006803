import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { onceOpener, readImageExport } from '../../src/copy/daemon/image-export.ts';
import { parseDaemonHost } from '../../src/copy/daemon/engine-client.ts';
import { LocationError, parseLocation } from '../../src/copy/location.ts';
import type { Digest } from '../../src/oci/digest.ts';
import { tarOf } from '../sources/droplet/fixtures.ts';
import { randomTar } from './fixtures.ts';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.ts';
import { imageFacts } from './inspect.ts';
import { copy } from './transfer.ts';

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest;

describe('docker-daemon: locations and daemon hosts', () => {
  test('NAME[:TAG], with a registry host and port in the name', () => {
    for (const [text, expected] of [
      ['docker-daemon:app', { transport: 'docker-daemon', name: 'app' }],
      ['docker-daemon:app:1.4', { transport: 'docker-daemon', name: 'app', reference: { kind: 'tag', tag: '1.4' } }],
      ['docker-daemon:registry.example.com:5000/team/app', { transport: 'docker-daemon', name: 'registry.example.com:5000/team/app' }],
      ['docker-daemon:registry.example.com:5000/team/app:v2', { transport: 'docker-daemon', name: 'registry.example.com:5000/team/app', reference: { kind: 'tag', tag: 'v2' } }],
    ] as const) {
      assert.deepEqual(parseLocation(text), expected, text);
    }
    for (const bad of ['docker-daemon:', 'docker-daemon:App:1', 'docker-daemon:app:bad tag']) assert.throws(() => parseLocation(bad), LocationError, bad);
  });

  test('unix:// and tcp:// hosts; TLS-only and ssh:// forms are usage errors', () => {
    assert.deepEqual(parseDaemonHost('unix:///var/run/docker.sock'), { socketPath: '/var/run/docker.sock' });
    assert.deepEqual(parseDaemonHost('tcp://127.0.0.1:2375'), { host: '127.0.0.1', port: 2375 });
    assert.deepEqual(parseDaemonHost('tcp://[::1]:2376'), { host: '::1', port: 2376 });
    assert.deepEqual(parseDaemonHost('tcp://docker.internal'), { host: 'docker.internal', port: 2375 });
    for (const bad of ['ssh://me@host', 'npipe:////./pipe/docker_engine', 'unix://', '/var/run/docker.sock']) assert.throws(() => parseDaemonHost(bad), LocationError, bad);
  });
});

describe('reading an image export as it streams', () => {
  test('podman-style names: config and layers known from their headers; manifest.json maps paths', async () => {
    const layers = [await randomTar(), await randomTar()];
    const config = Buffer.from('{"rootfs":{}}');
    const id = sha256(config);
    const diffIds = layers.map(sha256);
    const archive = await tarOf([
      ...layers.map((body) => ({ name: `${sha256(body).slice(7)}.tar`, body })),
      { name: `${id.slice(7)}.json`, body: config },
      { name: 'manifest.json', body: JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: ['app:1'], Layers: diffIds.map((diffId) => `${diffId.slice(7)}.tar`) }]) },
      { name: 'repositories', body: '{}' },
    ]);
    const seen: string[] = [];
    const reader = readImageExport(Readable.from([archive]), { id, diffIds });
    let result;
    for (;;) {
      const next = await reader.next();
      if (next.done === true) {
        result = next.value;
        break;
      }
      const entry = next.value;
      // Only one of the layers is read; the rest is skipped unread.
      if (entry.kind === 'layer' && entry.diffId === diffIds[1]) {
        const chunks: Buffer[] = [];
        for await (const chunk of entry.stream) chunks.push(chunk as Buffer);
        assert.equal(sha256(Buffer.concat(chunks)), diffIds[1]);
      }
      seen.push(entry.kind === 'layer' ? `layer ${entry.diffId} ${entry.size}` : entry.kind);
    }
    assert.deepEqual(seen, [`layer ${diffIds[0]} ${layers[0]?.length}`, `layer ${diffIds[1]} ${layers[1]?.length}`, 'config']);
    assert.deepEqual([...result.layerPaths.values()], diffIds);
  });

  test('Docker 25 and later: an OCI layout, each file named blobs/sha256/<digest>; the manifest blob and index are passed over', async () => {
    const layers = [await randomTar(), await randomTar()];
    const diffIds = layers.map(sha256);
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds } }));
    const id = sha256(config);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: id }, layers: diffIds.map((digest) => ({ digest })) }));
    const archive = await tarOf([
      { name: 'blobs/', type: 'directory' },
      { name: 'blobs/sha256/', type: 'directory' },
      { name: `blobs/sha256/${sha256(manifest).slice(7)}`, body: manifest },
      { name: `blobs/sha256/${id.slice(7)}`, body: config },
      ...layers.map((body) => ({ name: `blobs/sha256/${sha256(body).slice(7)}`, body })),
      { name: 'index.json', body: JSON.stringify({ schemaVersion: 2, manifests: [{ digest: sha256(manifest) }] }) },
      {
        name: 'manifest.json',
        body: JSON.stringify([{ Config: `blobs/sha256/${id.slice(7)}`, RepoTags: ['app:1'], Layers: diffIds.map((diffId) => `blobs/sha256/${diffId.slice(7)}`) }]),
      },
      { name: 'oci-layout', body: '{"imageLayoutVersion":"1.0.0"}' },
    ]);
    const seen: string[] = [];
    const reader = readImageExport(Readable.from([archive]), { id, diffIds });
    for (;;) {
      const next = await reader.next();
      if (next.done === true) break;
      const entry = next.value;
      seen.push(entry.kind === 'layer' ? `layer ${entry.diffId} ${entry.size}` : entry.kind);
    }
    assert.deepEqual(seen, ['config', `layer ${diffIds[0]} ${layers[0]?.length}`, `layer ${diffIds[1]} ${layers[1]?.length}`]);
  });

  test('a v1 layer whose id does not match is handed over unnamed, to be tied to a diff_id by manifest.json', async () => {
    const layer = await randomTar();
    const v1 = 'a'.repeat(64);
    const archive = await tarOf([
      { name: `${v1}/json`, body: '{"id":"x"}' },
      { name: `${v1}/layer.tar`, body: layer },
      { name: 'manifest.json', body: JSON.stringify([{ Config: 'c.json', Layers: [`${v1}/layer.tar`] }]) },
    ]);
    const kinds: string[] = [];
    const reader = readImageExport(Readable.from([archive]), { id: sha256(Buffer.from('c')), diffIds: [sha256(layer)] });
    for (;;) {
      const next = await reader.next();
      if (next.done === true) {
        assert.deepEqual([...next.value.layerPaths], [[`${v1}/layer.tar`, sha256(layer)]]);
        break;
      }
      kinds.push(next.value.kind === 'unnamed-layer' ? `unnamed ${next.value.path}` : next.value.kind);
    }
    assert.deepEqual(kinds, [`unnamed ${v1}/layer.tar`]);
  });
});

describe('a read-once stream as a blob opener', () => {
  test('consecutive ranges are served in order; going back is refused', async () => {
    const bytes = Buffer.from('0123456789');
    const open = onceOpener(Readable.from([bytes.subarray(0, 3), bytes.subarray(3)]), bytes.length);
    const text = async (stream: Readable) => {
      let out = '';
      for await (const chunk of stream) out += (chunk as Buffer).toString();
      return out;
    };
    assert.equal(await text(await open({ start: 0, end: 4 })), '01234');
    assert.equal(await text(await open({ start: 5, end: 9 })), '56789');
    await assert.rejects(open({ start: 0, end: 9 }), /an export is read once and cannot be resent from an earlier offset/);

    const whole = onceOpener(Readable.from([bytes]), bytes.length);
    assert.equal(await text(await whole()), '0123456789');
    await assert.rejects(whole(), /cannot be resent/, 'a retry from the start is refused too');
  });
});

describe('an export whose layer names Berth cannot tie to diff_ids from the headers', () => {
  test('is read a second time, with the paths its manifest.json gave', async () => {
    const temp = await tempDir('berth-fake-engine');
    const layers = [await randomTar(), await randomTar()];
    const diffIds = layers.map(sha256);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
    const id = sha256(config);
    const dirs = ['b'.repeat(64), 'a'.repeat(64)];
    const archive = await tarOf([
      ...dirs.flatMap((dir, position) => [
        { name: `${dir}/json`, body: `{"id":"${dir}"}` },
        { name: `${dir}/layer.tar`, body: layers[position] as Buffer },
      ]),
      { name: `${id.slice(7)}.json`, body: config },
      { name: 'manifest.json', body: JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: ['app:1'], Layers: dirs.map((dir) => `${dir}/layer.tar`) }]) },
    ]);
    const socket = join(temp.path, 'engine.sock');
    const engine = await fakeEngine(socket, { id, diffIds, archive: () => archive });
    try {
      const settings = { tempDir: temp.path, source: { daemonHost: `unix://${socket}` } };
      const result = await copy('docker-daemon:app:1', `oci:${temp.path}/layout:1`, settings);
      assert.equal(result.code, 0, result.reporter.failure());
      assert.equal(engine.exports, 2);
      assert.deepEqual(
        result.reporter
          .of('blob-copied')
          .map((event) => event.digest)
          .sort(),
        [id, ...diffIds].sort(),
      );
      const facts = await imageFacts(`oci:${temp.path}/layout:1`, { authFiles: [], tempDir: temp.path });
      assert.deepEqual(facts.layerDigests, diffIds);
      assert.equal(facts.configDigest, id);
    } finally {
      engine.server.close();
      await temp.remove();
    }
  });
});

describe('a layer the destination has', () => {
  test('is skipped from its tar header: its bytes in the export are neither checked nor written', async () => {
    const temp = await tempDir('berth-fake-engine');
    const layers = [await randomTar(), await randomTar()];
    const diffIds = layers.map(sha256);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
    const id = sha256(config);
    const exportOf = (bodies: Buffer[]) =>
      tarOf([
        ...bodies.map((body, position) => ({ name: `${(diffIds[position] as string).slice(7)}.tar`, body })),
        { name: `${id.slice(7)}.json`, body: config },
        { name: 'manifest.json', body: JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: ['app:1'], Layers: diffIds.map((diffId) => `${diffId.slice(7)}.tar`) }]) },
      ]);
    const good = await exportOf(layers);
    // The first layer, same size, other bytes: only reading it could tell.
    const garbled = Buffer.from(layers[0] as Buffer).fill(0x5a, 0, 1024);
    const bad = await exportOf([garbled, layers[1] as Buffer]);
    let archive = good;
    const socket = join(temp.path, 'engine.sock');
    const engine = await fakeEngine(socket, { id, diffIds, archive: () => archive });
    try {
      const settings = { tempDir: temp.path, source: { daemonHost: `unix://${socket}` } };
      const layout = `oci:${temp.path}/layout`;
      const first = await copy('docker-daemon:app:1', `${layout}:1`, settings);
      assert.equal(first.code, 0, first.reporter.failure());
      archive = bad;
      // Another tag of the same layout: everything but the garbled layer is there, and the garbled one is too.
      const second = await copy('docker-daemon:app:1', `${layout}:2`, settings);
      assert.equal(second.code, 0, second.reporter.failure());
      assert.equal(engine.exports, 2);
      assert.deepEqual(
        second.reporter
          .of('blob-skipped')
          .map((event) => event.digest)
          .sort(),
        [id, ...diffIds].sort(),
      );
      assert.equal(second.reporter.of('blob-started').length, 0);
      // Where the layer is missing, the same export is read and refused.
      const fresh = await copy('docker-daemon:app:1', `oci:${temp.path}/fresh:1`, settings);
      assert.equal(fresh.code, 6, fresh.reporter.failure());
      assert.match(fresh.reporter.failure(), /DIGEST_INVALID/);
    } finally {
      engine.server.close();
      await temp.remove();
    }
  });
});

describe("a Docker Engine on containerd's image store", () => {
  test('is refused both ways before any image moves: exit 2, saying what to do instead', async () => {
    const temp = await tempDir('berth-fake-engine');
    const layer = await randomTar();
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
    const id = sha256(config);
    const archive = await tarOf([
      { name: `${sha256(layer).slice(7)}.tar`, body: layer },
      { name: `${id.slice(7)}.json`, body: config },
      { name: 'manifest.json', body: JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: ['app:1'], Layers: [`${sha256(layer).slice(7)}.tar`] }]) },
    ]);
    const classic = await fakeEngine(join(temp.path, 'classic.sock'), { id, diffIds: [sha256(layer)], archive: () => archive });
    const info = { Driver: 'overlayfs', DriverStatus: [['driver-type', 'io.containerd.snapshotter.v1']] };
    const snapshotter = await fakeEngine(join(temp.path, 'containerd.sock'), { id, diffIds: [sha256(layer)], archive: () => archive, info });
    try {
      const layout = `oci:${temp.path}/layout:1`;
      const written = await copy('docker-daemon:app:1', layout, { tempDir: temp.path, source: { daemonHost: `unix://${temp.path}/classic.sock` } });
      assert.equal(written.code, 0, written.reporter.failure());

      const settings = { tempDir: temp.path, source: { daemonHost: `unix://${temp.path}/containerd.sock` }, destination: { daemonHost: `unix://${temp.path}/containerd.sock` } };
      const out = await copy('docker-daemon:app:1', `oci:${temp.path}/other:1`, settings);
      assert.equal(out.code, 2, out.reporter.failure());
      assert.match(out.reporter.failure(), /keeps images in containerd's image store, which docker-daemon: does not support yet; go through a file instead/);
      const into = await copy(layout, 'docker-daemon:app:2', settings);
      assert.equal(into.code, 2, into.reporter.failure());
      assert.match(into.reporter.failure(), /containerd-snapshotter/);
      assert.deepEqual(snapshotter.paths, ['/info', '/info'], 'nothing inspected, exported or loaded');
    } finally {
      classic.server.close();
      snapshotter.server.close();
      await temp.remove();
    }
  });
});

/**
 * The Engine API calls a copy out of a daemon makes (inspect, export), answered as dockerd answers them, on a
 * unix socket; `/info` as a classic engine answers it unless `info` says otherwise; a load is refused. Every path is recorded.
 */
async function fakeEngine(
  socket: string,
  image: { id: Digest; diffIds: Digest[]; archive: () => Buffer; info?: object },
): Promise<{ server: Server; paths: string[]; readonly exports: number }> {
  const paths: string[] = [];
  const server = createServer((request, response) => {
    paths.push(request.url ?? '');
    if (request.url === '/info') {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(image.info ?? { Driver: 'overlay2', DriverStatus: [['Backing Filesystem', 'extfs']] }));
    } else if (request.url === '/images/app%3A1/json') {
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ Id: image.id, RepoTags: ['app:1'], RootFS: { Type: 'layers', Layers: image.diffIds } }));
    } else if (request.url === '/images/app%3A1/get') {
      response.setHeader('content-type', 'application/x-tar');
      response.end(image.archive());
    } else {
      request.resume();
      response.statusCode = 404;
      response.end('{"message":"page not found"}');
    }
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    server,
    paths,
    get exports() {
      return paths.filter((path) => path.endsWith('/get')).length;
    },
  };
}
