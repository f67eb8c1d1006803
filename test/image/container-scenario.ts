import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeFlags, type BuiltImage } from '../../scripts/image/build.ts';
import { compileCacheDir, imagePaths, imageUser } from '../../scripts/image/compose.ts';
import { startContainer } from '../../scripts/image/run.ts';
import { sharedBerthImage } from '../helpers/berth-image.ts';
import { freePort } from '../helpers/nginx.ts';
import { tempDir } from '../helpers/tmp.ts';
import { run } from '../helpers/tools.ts';

/** A container engine as the scenario drives it. */
export interface ContainerEngine {
  /** Runs the engine's CLI; resolves to stdout. */
  cli(args: string[]): Promise<string>;
  /** Puts the built archive into the engine; resolves to the image's name there. */
  load(image: BuiltImage, temp: string): Promise<string>;
  /** `run` flags that make Berth reachable on loopback `port`, besides the `-p 127.0.0.1:port:5000` every run gets. */
  networkFlags(port: number): string[];
  /** Whatever else `run` needs on this engine. */
  runFlags: string[];
  stop(): Promise<void>;
}

/**
 * The image run as a registry, the same steps for every engine: the
 * container `npm run image -- --run` starts (a read-only root file system,
 * the data on a named volume), with no capabilities; pushes and pulls with
 * skopeo and the engine itself, the image pushed into itself and pulled
 * back by digest; SIGTERM; a new container on the same volume with a
 * configuration file mounted.
 */
export function containerScenario(start: () => Promise<ContainerEngine>, cli: string): void {
  let engine: ContainerEngine;
  let built: BuiltImage;
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let image: string;
  let port: number;
  const volume = `berth-test-${process.pid}`;
  const containers: string[] = [];

  /** The container `npm run image -- --run` starts (scripts/image/run.ts), with this engine's flags and a config file mounted if given. */
  const startBerth = async (config?: string): Promise<string> => {
    const flags = ['--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', ...engine.runFlags, ...engine.networkFlags(port)];
    if (config !== undefined) flags.push('-v', `${config}:${imagePaths.config}:ro`);
    const container = `berth-test-${process.pid}-${containers.length}`;
    const id = await startContainer(engine.cli, image, `http://127.0.0.1:${port}`, { container, publish: `127.0.0.1:${port}`, volume, flags });
    containers.push(id);
    return id;
  };

  before(async () => {
    built = await sharedBerthImage();
    temp = await tempDir('berth-image-run');
    engine = await start();
    image = await engine.load(built, temp.path);
    port = await freePort();
  });
  after(async () => {
    for (const id of containers) await engine.cli(['rm', '-f', id]).catch(() => undefined);
    await engine.cli(['volume', 'rm', '-f', volume]).catch(() => undefined);
    await engine.stop();
    // An engine may still be letting go of files in its storage for a moment.
    await rm(temp.path, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
  });

  let first: string;
  const registry = () => `127.0.0.1:${port}`;

  it('runs as its numeric non-root user on a read-only root file system, its data on the volume', async () => {
    first = await startBerth();
    const probe = (code: string) => engine.cli(['exec', first, imagePaths.node, '-e', code]);
    // PID 1 is Berth itself (Node, no init), running as the image's user.
    const pid1 = (
      await probe(
        "const fs = require('fs'); console.log(fs.readFileSync('/proc/1/cmdline', 'utf8').split('\\0').join(' ').trim()); console.log(fs.readFileSync('/proc/1/status', 'utf8'))",
      )
    ).split('\n');
    assert.equal(pid1[0], [imagePaths.node, ...(await nodeFlags()), `${imagePaths.app}/main.mjs`, 'serve', '--config', imagePaths.config].join(' '));
    const ids = (field: string) =>
      pid1
        .find((line) => line.startsWith(`${field}:`))
        ?.split(/\s+/)
        .slice(1, 5);
    assert.deepEqual(ids('Uid'), Array(4).fill(String(imageUser.uid)));
    assert.deepEqual(ids('Gid'), Array(4).fill(String(imageUser.gid)));
    assert.equal((await probe('console.log(process.getuid(), process.getgid())')).trim(), `${imageUser.uid} ${imageUser.gid}`);
    assert.match(await probe("try { require('fs').writeFileSync('/opt/berth/x', '') } catch (e) { console.log(e.code) }"), /EROFS/);
    assert.match(await probe(`console.log(require('fs').readdirSync('${imagePaths.data}').join(' '))`), /\S/, 'Berth wrote its data on the volume');
  });

  it(`takes pushes and pulls from skopeo and ${cli}; the image itself goes in and comes back by its digest`, async () => {
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci-archive:${built.output}`, `docker://${registry()}/berth/self:test`]);
    const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry()}/berth/self@${built.digest}`]);
    assert.equal((JSON.parse(raw) as { mediaType: string }).mediaType, built.mediaType);
    await run('skopeo', ['copy', '--src-tls-verify=false', `docker://${registry()}/berth/self@${built.digest}`, `oci:${join(temp.path, 'pulled')}:back`]);
    await engine.cli(['tag', image, `${registry()}/berth/engine:1`]);
    await engine.cli(['push', ...(cli === 'podman' ? ['--tls-verify=false'] : []), `${registry()}/berth/engine:1`]);
    await engine.cli(['rmi', `${registry()}/berth/engine:1`]);
    await engine.cli(['pull', ...(cli === 'podman' ? ['--tls-verify=false'] : []), `${registry()}/berth/engine:1`]);
    const tags = JSON.parse(await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${registry()}/berth/engine`])) as { Tags: string[] };
    assert.deepEqual(tags.Tags, ['1']);
  });

  it('stops on SIGTERM with exit code 0 after finishing a request in flight, well within the drain timeout', async () => {
    // An upload whose body is still arriving when SIGTERM comes: Berth finishes it before it exits.
    const opened = await fetch(`http://${registry()}/v2/berth/drain/blobs/uploads/`, { method: 'POST' });
    assert.equal(opened.status, 202);
    const location = new URL(opened.headers.get('location') ?? '', `http://${registry()}`);
    let finish: () => void = () => undefined;
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(1024).fill(1));
        await new Promise<void>((resolve) => (finish = resolve));
        controller.enqueue(new Uint8Array(1024).fill(2));
        controller.close();
      },
    });
    const patch = fetch(location, { method: 'PATCH', body, duplex: 'half', headers: { 'content-type': 'application/octet-stream' } } as RequestInit);
    await sleep(500);
    const started = performance.now();
    const stopping = engine.cli(['stop', '--time', '30', first]);
    for (let attempt = 0; attempt < 100 && !/"msg":"stopping: finishing in-flight requests"/.test(await engine.cli(['logs', first])); attempt += 1) await sleep(100);
    finish();
    const answered = await patch;
    assert.equal(answered.status, 202, await answered.text());
    assert.equal(answered.headers.get('range'), '0-2047');
    await stopping;
    const seconds = (performance.now() - started) / 1000;
    assert.equal((await engine.cli(['inspect', first, '--format', '{{.State.ExitCode}}'])).trim(), '0');
    assert.ok(seconds < 10, `stopping took ${seconds} s`);
    assert.match(await engine.cli(['logs', first]), /"msg":"stopped"/);
  });

  it('keeps its data in a new container on the same volume, configured by a file mounted over its configuration', async () => {
    const config = join(temp.path, 'berth.yaml');
    await writeFile(config, `listen: 0.0.0.0:5000\ndataDir: ${imagePaths.data}\nregistry:\n  deletes: false\n`, { mode: 0o644 });
    const second = await startBerth(config);
    // The first container left Node's compile cache on the volume for this one.
    const cached = await engine.cli([
      'exec',
      second,
      imagePaths.node,
      '-e',
      `const fs = require('fs'); const dir = '${imagePaths.data}/${compileCacheDir}'; for (const version of fs.readdirSync(dir)) console.log(version, fs.readdirSync(dir + '/' + version).length)`,
    ]);
    assert.match(cached, /^v24\.\S+ [1-9]\d*$/m, cached);
    const raw = await run('skopeo', ['inspect', '--tls-verify=false', '--raw', `docker://${registry()}/berth/self@${built.digest}`]);
    assert.equal((JSON.parse(raw) as { mediaType: string }).mediaType, built.mediaType);
    // The mounted file is the one read: it turns deletes off.
    const refused = await fetch(`http://${registry()}/v2/berth/self/manifests/${built.digest}`, { method: 'DELETE' });
    assert.equal(refused.status, 405);
    assert.equal(((await refused.json()) as { errors: { code: string }[] }).errors[0]?.code, 'UNSUPPORTED');
  });
}
