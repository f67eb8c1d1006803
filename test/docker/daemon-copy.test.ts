import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import { createConnection, createServer, type Server } from 'node:net';
import { watch } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { berthMain, runBerth } from '../helpers/process.ts';
import { imageIndex, pushImage, pushManifest } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { imageFacts } from '../copy/inspect.ts';
import { copy, sync } from '../copy/transfer.ts';
import { busyboxLayer, filesLayer, imageId, layeredImage, loadIntoDocker, type LayeredImage } from './images.ts';

/**
 * docker-daemon: against real Docker Engines: a "build machine" whose
 * images go out to a directory, a bucket or a registry, and a "server"
 * with no registry that takes them back and runs them (the dogestry flow).
 */
describe('berth copy and sync with docker-daemon: (Docker Engine)', { skip: dockerUnavailable() || missingCommands('busybox') }, () => {
  let build: DockerEngine;
  let server: DockerEngine;
  let registry: TestRegistry;
  let s3: TestS3;
  let temp: { path: string; remove(): Promise<void> };
  let web1: LayeredImage;
  let web2: LayeredImage;
  const on = (engine: DockerEngine, extra: Partial<Parameters<typeof copy>[2]> = {}) => ({
    tempDir: temp.path,
    source: { daemonHost: engine.host },
    destination: { daemonHost: engine.host },
    ...extra,
  });

  before(async () => {
    temp = await tempDir('berth-daemon-copy');
    [build, server, registry, s3] = await Promise.all([startDockerEngine(), startDockerEngine(), startTestRegistry(), startTestS3()]);
    const base = await busyboxLayer();
    web1 = layeredImage([base, await filesLayer({ 'app/version': 'one\n' })], ['/bin/sh', '-c', 'cat /app/version']);
    web2 = layeredImage([base, await filesLayer({ 'app/version': 'two\n' })], ['/bin/sh', '-c', 'cat /app/version']);
    await loadIntoDocker(build, web1, 'shop/web:1', temp.path);
    await loadIntoDocker(build, web2, 'shop/web:2', temp.path);
  });
  after(async () => {
    await Promise.all([build?.stop(), server?.stop(), registry?.close(), s3?.close()]);
    await temp?.remove();
  });

  test('daemon → directory → another daemon: same image ID, and it runs; the export is read once', async () => {
    const layout = `oci:${temp.path}/layout:1`;
    const counted = await countingProxy(build.host.slice('unix://'.length), join(temp.path, 'counted.sock'));
    let out;
    try {
      out = await copy('docker-daemon:shop/web:1', layout, { tempDir: temp.path, source: { daemonHost: `unix://${join(temp.path, 'counted.sock')}` } });
    } finally {
      counted.server.close();
    }
    assert.equal(out.code, 0, out.reporter.failure());
    assert.deepEqual(
      counted.paths.filter((path) => path.endsWith('/get')),
      ['/images/shop%2Fweb%3A1/get'],
      "Docker 20.10's v1 layer names were recognised: one pass",
    );
    const facts = await imageFacts(layout, { authFiles: [], tempDir: temp.path });
    assert.equal(facts.configDigest, web1.config.digest);
    assert.deepEqual(facts.layerDigests, web1.diffIds, 'layers travel as the plain tars the daemon exports');
    assert.deepEqual(facts.layerMediaTypes, [mediaTypes.ociLayerTar, mediaTypes.ociLayerTar]);

    const back = await copy(layout, 'docker-daemon:shop/web:1', on(server));
    assert.equal(back.code, 0, back.reporter.failure());
    assert.equal(await imageId(server, 'shop/web:1'), web1.config.digest);
    assert.equal(await server.docker(['run', '--rm', '--network', 'none', 'shop/web:1']), 'one\n');
  });

  test('layers the destination has are skipped from the header, before their bytes are read; a current tag exports nothing', async () => {
    const layout = `oci:${temp.path}/shared`;
    const first = await copy('docker-daemon:shop/web:1', `${layout}:1`, on(build));
    assert.equal(first.code, 0, first.reporter.failure());
    const second = await copy('docker-daemon:shop/web:2', `${layout}:2`, on(build));
    assert.equal(second.code, 0, second.reporter.failure());
    assert.deepEqual(
      second.reporter.of('blob-skipped').map((event) => event.digest),
      [web2.diffIds[0]],
      'the shared busybox layer',
    );
    assert.deepEqual(
      second.reporter
        .of('blob-copied')
        .map((event) => event.digest)
        .sort(),
      [web2.config.digest, web2.diffIds[1]].sort(),
    );
    const again = await copy('docker-daemon:shop/web:2', `${layout}:2`, on(build));
    assert.equal(again.code, 0, again.reporter.failure());
    assert.deepEqual(
      again.reporter.events.map((event) => event.event),
      ['image-started', 'image-up-to-date'],
    );
  });

  test('daemon → docker-archive: the file docker load takes', async () => {
    const file = join(temp.path, 'web1.tar');
    const out = await copy('docker-daemon:shop/web:1', `docker-archive:${file}:archived/web:1`, on(build));
    assert.equal(out.code, 0, out.reporter.failure());
    assert.match(await server.docker(['load', '-i', file]), /Loaded image: archived\/web:1/);
    assert.equal(await imageId(server, 'archived/web:1'), web1.config.digest);
  });

  test('daemon → registry → daemon, sending the daemon only the layers it lacks', async () => {
    const out = await copy('docker-daemon:shop/web:2', `docker://${registry.host}/shop/web:2`, on(build));
    assert.equal(out.code, 0, out.reporter.failure());
    const facts = await imageFacts(`docker://${registry.host}/shop/web:2`, { authFiles: [], tempDir: temp.path });
    assert.equal(facts.configDigest, web2.config.digest);
    assert.equal(facts.mediaType, mediaTypes.dockerManifest);
    assert.deepEqual(facts.diffIds, web2.diffIds);
    const back = await copy(`docker://${registry.host}/shop/web:2`, 'docker-daemon:from-registry/web:2', on(server));
    assert.equal(back.code, 0, back.reporter.failure());
    // The server has shop/web:1, on the same busybox layer: Docker's load is not sent that one again.
    assert.deepEqual(
      back.reporter.of('blob-skipped').map((event) => event.digest),
      [web2.diffIds[0]],
    );
    assert.deepEqual(
      back.reporter.of('blob-copied').map((event) => event.digest),
      [web2.diffIds[1]],
    );
    assert.equal(await server.docker(['run', '--rm', '--network', 'none', 'from-registry/web:2']), 'two\n');
  });

  test('the dogestry flow: build machine → bucket → a server with no registry → docker run, no temporary file; a second pull loads nothing', async () => {
    // An image of its own: the server has its base layer (from shop/web:1) but not the image.
    const api = layeredImage([await busyboxLayer(), await filesLayer({ 'app/version': 'api\n' })], ['/bin/sh', '-c', 'cat /app/version']);
    await loadIntoDocker(build, api, 'shop/api:1', temp.path);
    await assert.rejects(server.docker(['image', 'inspect', api.config.digest]), /No such image/);
    const bucket = `s3://${s3.bucket}/deploy/shop-api:1`;
    // The temporary directory both copies are given: nothing is staged there, not even for a moment.
    const staging = join(temp.path, 'staging');
    await mkdir(staging);
    const staged: string[] = [];
    const watcher = watch(staging, (_, file) => staged.push(String(file)));
    let pulled;
    try {
      const out = await copy('docker-daemon:shop/api:1', bucket, { ...on(build, { s3 }), tempDir: staging });
      assert.equal(out.code, 0, out.reporter.failure());
      pulled = await copy(bucket, 'docker-daemon:shop/api:1', { ...on(server, { s3 }), tempDir: staging });
      assert.equal(pulled.code, 0, pulled.reporter.failure());
    } finally {
      watcher.close();
    }
    assert.deepEqual(staged, []);
    assert.deepEqual(await readdir(staging), []);
    assert.equal(pulled.reporter.of('image-copied')[0]?.imageId, api.config.digest, 'loaded, not only tagged');
    assert.deepEqual(
      pulled.reporter.of('blob-copied').map((event) => event.digest),
      [api.diffIds[1]],
      'only the layer the server lacks',
    );
    assert.equal(await imageId(server, 'shop/api:1'), api.config.digest);
    assert.equal(await server.docker(['run', '--rm', '--network', 'none', 'shop/api:1']), 'api\n');

    const again = await copy(bucket, 'docker-daemon:shop/api:1', on(server, { s3 }));
    assert.equal(again.code, 0, again.reporter.failure());
    assert.deepEqual(again.reporter.of('image-present'), [
      { event: 'image-present', source: bucket, destination: 'docker-daemon:shop/api:1', imageId: api.config.digest, tagged: false },
    ]);
    assert.equal(again.reporter.of('blob-started').length, 0);
    const renamed = await copy(bucket, 'docker-daemon:shop/api:live', on(server, { s3 }));
    assert.equal(renamed.reporter.of('image-present')[0]?.tagged, true, 'present under another name: tagged, not loaded');
    assert.equal(await imageId(server, 'shop/api:live'), api.config.digest);
  });

  test('sync: every tag of a name out of the daemon and into another', async () => {
    const layout = `oci:${temp.path}/synced`;
    const out = await sync('docker-daemon:shop/web', layout, on(build));
    assert.equal(out.code, 0, out.reporter.failure());
    assert.deepEqual(out.reporter.of('sync-done')[0], { event: 'sync-done', images: 2, copied: 2, upToDate: 0, failed: 0 });
    const again = await sync('docker-daemon:shop/web', layout, on(build));
    assert.deepEqual(again.reporter.of('sync-done')[0], { event: 'sync-done', images: 2, copied: 0, upToDate: 2, failed: 0 });
    // Earlier tests left both images on the server: without them, the sync has to load each.
    await server.docker(['rmi', 'shop/web:1', 'archived/web:1', 'from-registry/web:2']);
    const into = await sync(layout, 'docker-daemon:synced/web', on(server));
    assert.equal(into.code, 0, into.reporter.failure());
    assert.deepEqual(into.reporter.of('sync-done')[0], { event: 'sync-done', images: 2, copied: 2, upToDate: 0, failed: 0 });
    assert.deepEqual(
      into.reporter.of('image-copied').map((event) => event.imageId),
      [web1.config.digest, web2.config.digest],
    );
    assert.equal(await imageId(server, 'synced/web:1'), web1.config.digest);
    assert.equal(await imageId(server, 'synced/web:2'), web2.config.digest);
    const intoAgain = await sync(layout, 'docker-daemon:synced/web', on(server));
    assert.deepEqual(intoAgain.reporter.of('sync-done')[0], { event: 'sync-done', images: 2, copied: 0, upToDate: 2, failed: 0 });
    assert.equal(intoAgain.reporter.of('image-present').length, 2);
  });

  test('clear failures: a missing image (exit 4), no daemon (exit 1), --all into a daemon (exit 2, --platform picks one)', async () => {
    const missing = await copy('docker-daemon:shop/web:404', `oci:${temp.path}/none:1`, on(build));
    assert.equal(missing.code, 4);
    assert.match(missing.reporter.failure(), /MANIFEST_UNKNOWN: docker-daemon: the daemon at unix:\/\/.* has no image shop\/web:404/);
    const gone = await copy('docker-daemon:shop/web:1', `oci:${temp.path}/none:1`, { tempDir: temp.path, source: { daemonHost: `unix://${temp.path}/no.sock` } });
    assert.equal(gone.code, 1);
    assert.match(gone.reporter.failure(), /cannot reach the daemon at unix:\/\/.*no\.sock \(ENOENT\); is dockerd or `podman system service` running\?/);
    await pushImage(registry.url, 'multi/web', 'one', web1);
    await pushImage(registry.url, 'multi/web', 'two', web2);
    const index = imageIndex(
      [
        { image: web1, os: 'linux', architecture: 'amd64' },
        { image: web2, os: 'linux', architecture: 'arm64' },
      ],
      true,
    );
    await pushManifest(registry.url, 'multi/web', 'both', index);
    const all = await copy(`docker://${registry.host}/multi/web:both`, 'docker-daemon:multi/web:both', on(server, { options: { platforms: 'all' } }));
    assert.equal(all.code, 2);
    assert.match(all.reporter.failure(), /a daemon holds one platform per name; choose one with --platform/);
    const arm = await copy(
      `docker://${registry.host}/multi/web:both`,
      'docker-daemon:multi/web:arm',
      on(server, { options: { platforms: { os: 'linux', architecture: 'arm64' } } }),
    );
    assert.equal(arm.code, 0, arm.reporter.failure());
    assert.equal(await imageId(server, 'multi/web:arm'), web2.config.digest);
  });

  test('a corrupt layer in the source stops the load: exit 6, and the daemon has no such image', async () => {
    const web3 = layeredImage([await busyboxLayer(), await filesLayer({ 'app/version': 'three\n' })]);
    await loadIntoDocker(build, web3, 'shop/web:3', temp.path);
    const layout = join(temp.path, 'corrupt');
    const written = await copy('docker-daemon:shop/web:3', `oci:${layout}:1`, on(build));
    assert.equal(written.code, 0, written.reporter.failure());
    const blob = join(layout, 'blobs', 'sha256', (web3.diffIds[1] as string).slice(7));
    const bytes = await readFile(blob);
    bytes[600] = (bytes[600] as number) ^ 0xff;
    await writeFile(blob, bytes);
    const loaded = await copy(`oci:${layout}:1`, 'docker-daemon:corrupt/web:1', on(server));
    assert.equal(loaded.code, 6, loaded.reporter.failure());
    assert.match(loaded.reporter.failure(), /DIGEST_INVALID: layer sha256:.*: the source sent/);
    await assert.rejects(server.docker(['image', 'inspect', 'corrupt/web:1']), /No such image/);
  });

  test('progress as for the other transports: byte counts up to each blob, bars on a terminal, JSON events', async () => {
    const web5 = layeredImage([await busyboxLayer(), await filesLayer({ 'app/version': 'five\n', 'app/padding': 'x'.repeat(300_000) })]);
    await loadIntoDocker(build, web5, 'shop/web:5', temp.path);
    const layout = `oci:${temp.path}/progress`;
    const reachesSize = (events: { event: string; digest?: string; size?: number; bytes?: number }[], digest: string, size: number) =>
      events.filter((event) => event.event === 'blob-progress' && event.digest === digest).at(-1)?.bytes === size;

    const out = await copy('docker-daemon:shop/web:5', `${layout}:5`, on(build));
    assert.equal(out.code, 0, out.reporter.failure());
    const written = out.reporter.of('blob-copied').filter((event) => event.digest !== web5.config.digest);
    assert.equal(written.length, 2);
    for (const blob of written) assert.ok(reachesSize(out.reporter.events, blob.digest, blob.size), `progress of ${blob.digest} out of the daemon`);

    const into = await copy(`${layout}:5`, 'docker-daemon:progress/web:5', on(server));
    assert.equal(into.code, 0, into.reporter.failure());
    const loaded = into.reporter.of('blob-copied');
    assert.ok(loaded.length >= 1);
    for (const blob of loaded) assert.ok(reachesSize(into.reporter.events, blob.digest, blob.size), `progress of ${blob.digest} into the daemon`);

    const tty = await runBerth(['copy', '--progress', 'tty', '--daemon-host', build.host, 'docker-daemon:shop/web:5', `${layout}-tty:5`]);
    assert.equal(tty.code, 0, tty.stderr);
    const screen = terminalLines(tty.stderr);
    assert.match(screen, /^copying docker-daemon:shop\/web:5 → oci:.*progress-tty:5$/m);
    assert.match(screen, /^sha256:[0-9a-f]{12} \[[= ]{30}\] /m, 'a bar per blob in flight');
    assert.match(screen, new RegExp(`^copied  ${(web5.diffIds[1] as string).slice(0, 19)} `, 'm'));
    assert.match(screen, /^done {4}oci:.*progress-tty:5 sha256:[0-9a-f]{12}: 3 copied/m);
    const present = await runBerth(['copy', '--progress', 'tty', '--daemon-host', server.host, `${layout}:5`, 'docker-daemon:progress/web:5']);
    assert.equal(present.code, 0, present.stderr);
    assert.match(terminalLines(present.stderr), /^present docker-daemon:progress\/web:5: the daemon has image sha256:[0-9a-f]{12}; nothing loaded$/m);

    const json = await runBerth(['copy', '--progress', 'json', '--daemon-host', server.host, `${layout}:5`, 'docker-daemon:json/web:5']);
    assert.equal(json.code, 0, json.stderr);
    const events = json.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { event: string; time: string; imageId?: string; tagged?: boolean });
    assert.ok(events.every((event) => !Number.isNaN(Date.parse(event.time))));
    assert.deepEqual(
      events.map((event) => event.event),
      ['image-started', 'image-present'],
    );
    assert.equal(events[1]?.imageId, web5.config.digest);
    assert.equal(events[1]?.tagged, true);
  });

  test('the CLI honours DOCKER_HOST, --daemon-host over tcp://, and says when the socket is not allowed', async () => {
    const viaEnv = await runBerth(['copy', '--progress', 'json', 'docker-daemon:shop/web:1', `oci:${temp.path}/cli:1`], '', { DOCKER_HOST: build.host });
    assert.equal(viaEnv.code, 0, viaEnv.stderr + viaEnv.stdout);
    assert.ok(viaEnv.stdout.split('\n').some((line) => line.includes('"event":"image-copied"')));

    const proxy = await tcpToUnix(build.host.slice('unix://'.length));
    try {
      const port = (proxy.address() as { port: number }).port;
      const viaTcp = await runBerth(['copy', '--progress', 'none', '--daemon-host', `tcp://127.0.0.1:${port}`, 'docker-daemon:shop/web:2', `oci:${temp.path}/cli:2`], '', {
        DOCKER_HOST: 'unix:///nonexistent.sock',
      });
      assert.equal(viaTcp.code, 0, viaTcp.stderr);
      const tcpViaEnv = await runBerth(['copy', '--progress', 'none', 'docker-daemon:shop/web:2', `oci:${temp.path}/cli:3`], '', { DOCKER_HOST: `tcp://127.0.0.1:${port}` });
      assert.equal(tcpViaEnv.code, 0, tcpViaEnv.stderr);
    } finally {
      proxy.close();
    }

    const denied = await runAsNobody(['copy', '--progress', 'none', '--daemon-host', build.host, 'docker-daemon:shop/web:1', 'oci:/tmp/berth-never-written:1']);
    assert.equal(denied.code, 5, denied.stderr);
    assert.match(denied.stderr, /permission denied on .*docker\.sock: run as a user in the docker group \(or root\)/);
  });
});

/** Terminal output without the escapes that move up over the live bars (CSI n F, CSI J). */
function terminalLines(text: string): string {
  const esc = String.fromCharCode(27);
  return text.replace(new RegExp(`${esc}\\[\\d+F${esc}\\[J`, 'g'), '');
}

/** A TCP port on loopback that forwards to the engine's unix socket: dockerd's tcp:// without exposing it. */
async function tcpToUnix(socket: string): Promise<Server> {
  const server = createServer((client) => {
    const upstream = createConnection(socket);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** An Engine API socket that forwards to the engine's and records each request's path. */
async function countingProxy(engineSocket: string, socket: string): Promise<{ server: HttpServer; paths: string[] }> {
  const paths: string[] = [];
  const server = createHttpServer((incoming, outgoing) => {
    paths.push(incoming.url ?? '');
    const upstream = httpRequest({ socketPath: engineSocket, path: incoming.url, method: incoming.method, headers: incoming.headers }, (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    });
    upstream.on('error', () => outgoing.destroy());
    incoming.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return { server, paths };
}

/** `berth ARGS` as user nobody, who may not use the root-owned engine socket. */
function runAsNobody(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [berthMain, ...args], { uid: 65534, gid: 65534, env: { PATH: process.env['PATH'], HOME: '/tmp' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
