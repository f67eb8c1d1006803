import assert from 'node:assert/strict';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { authSettings, basic } from '../helpers/auth.ts';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { pushImage } from '../helpers/images.ts';
import { runnableImage } from '../helpers/runnable-image.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { busyboxLayer, filesLayer, imageId, layeredImage, loadIntoDocker } from './images.ts';

// docs/auth.md's quick start: a user, anonymous pull on, over plain HTTP on loopback (docker treats it as insecure).
for (const challenge of ['basic', 'token'] as const) {
  describe(`docker pulls anonymously with the ${challenge} challenge and BERTH_AUTH_ANONYMOUS_PULL=true`, { skip: dockerUnavailable() }, () => {
    let temp: { path: string; remove(): Promise<void> };
    let registry: TestRegistry;
    let engine: DockerEngine;

    before(async () => {
      temp = await tempDir(`berth-docker-anonymous-${challenge}`);
      const settings = await authSettings(temp.path, { users: { alice: 'alice-secret' }, extra: { 'auth.challenge': challenge, 'auth.anonymousPull': true } });
      registry = await startTestRegistry(settings);
      engine = await startDockerEngine();
    });
    after(async () => {
      await engine?.stop();
      await registry?.close();
      await temp?.remove();
    });

    it('pulls what alice pushed without logging in; pushing needs her password', async () => {
      const image = await runnableImage({ 'hello.txt': `hello, ${challenge}\n` });
      await pushImage(registry.url, 'team/app', '1.0', image, basic('alice', 'alice-secret'));
      const host = `localhost:${registry.host.split(':')[1]}`;
      const pulled = await engine.docker(['pull', `${host}/team/app:1.0`]);
      assert.match(pulled, new RegExp(`Digest: ${image.manifest.digest}`));
      await engine.docker(['tag', `${host}/team/app:1.0`, `${host}/team/app:1.1`]);
      await assert.rejects(engine.docker(['push', `${host}/team/app:1.1`]), /authentication required|unauthorized|denied/i);
      await assert.rejects(engine.docker(['login', host, '-u', 'alice', '--password-stdin'], { input: 'wrong' }), /unauthorized|invalid username/i);
      assert.match(await engine.docker(['login', host, '-u', 'alice', '--password-stdin'], { input: 'alice-secret' }), /Login Succeeded/);
      await engine.docker(['push', `${host}/team/app:1.1`]);
      await engine.docker(['logout', host]);
      assert.match(await engine.docker(['pull', `${host}/team/app:1.1`]), /Status:/);
    });
  });
}

// docs/auth.md's quick start as written: `--tls self-signed`, the CA where berth serve says docker wants it, and docker alone.
describe('docs/auth.md quick start with docker: TLS self-signed, a user, anonymous pull', { skip: dockerUnavailable() || missingCommands('busybox') }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let registry: TestRegistry;
  let engine: DockerEngine;
  let certsDir: string;

  before(async () => {
    temp = await tempDir('berth-docker-quick-start');
    const settings = await authSettings(temp.path, { users: { alice: 'alice-secret' }, extra: { 'auth.anonymousPull': true, 'tls.selfSigned': true } });
    registry = await startTestRegistry(settings);
    // What berth serve prints for docker: sudo mkdir -p /etc/docker/certs.d/HOST:PORT && sudo cp data/tls/ca.crt …
    certsDir = join('/etc/docker/certs.d', `localhost:${registry.host.split(':')[1]}`);
    await mkdir(certsDir, { recursive: true });
    await copyFile(registry.server.security.caCert as string, join(certsDir, 'ca.crt'));
    engine = await startDockerEngine();
  });
  after(async () => {
    await engine?.stop();
    await registry?.close();
    if (certsDir !== undefined) await rm(certsDir, { recursive: true, force: true });
    await temp?.remove();
  });

  it('login, push, logout, anonymous pull, and a refused push', async () => {
    assert.match(registry.url, /^https:/);
    const host = `localhost:${registry.host.split(':')[1]}`;
    const app = layeredImage([await busyboxLayer(), await filesLayer({ 'hello.txt': 'hello, quick start\n' })], ['/bin/cat', '/hello.txt']);
    await loadIntoDocker(engine, app, `${host}/team/app:1.0`, temp.path);
    assert.match(await engine.docker(['login', host, '-u', 'alice', '--password-stdin'], { input: 'alice-secret' }), /Login Succeeded/);
    await engine.docker(['push', `${host}/team/app:1.0`]);
    await engine.docker(['logout', host]);
    await engine.docker(['rmi', `${host}/team/app:1.0`]);
    await engine.docker(['pull', `${host}/team/app:1.0`]);
    assert.equal(await imageId(engine, `${host}/team/app:1.0`), app.config.digest);
    assert.equal(await engine.docker(['run', '--rm', '--network', 'none', `${host}/team/app:1.0`]), 'hello, quick start\n');
    await engine.docker(['tag', `${host}/team/app:1.0`, `${host}/team/app:1.1`]);
    await assert.rejects(engine.docker(['push', `${host}/team/app:1.1`]), /authentication required|unauthorized/i);
  });
});
