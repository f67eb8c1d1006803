import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authSettings } from '../helpers/auth.ts';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { busyboxLayer, filesLayer, imageId, layeredImage, loadIntoDocker, type LayeredImage } from './images.ts';

const users = { alice: 'alice-secret', bob: 'bob-secret' };
const rules = {
  rules: [
    { repositories: '**', grants: { alice: ['pull' as const, 'push' as const, 'delete' as const], bob: ['pull' as const] } },
    { repositories: 'public/**', anonymous: ['pull' as const], grants: { alice: ['pull' as const, 'push' as const] } },
  ],
};

/** The error output of a docker command that must fail. */
async function refused(engine: DockerEngine, args: string[], input?: string): Promise<string> {
  try {
    await engine.docker(args, input === undefined ? {} : { input });
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail(`docker ${args.join(' ')} succeeded`);
}

/** Docker Engine 20.10 (Debian's docker.io) as a client of a real Berth, in both challenge modes. */
for (const challenge of ['basic', 'token'] as const) {
  describe(`Docker Engine pushes to and pulls from Berth, ${challenge} challenge`, { skip: dockerUnavailable() || missingCommands('busybox') }, () => {
    let engine: DockerEngine;
    let registry: TestRegistry;
    let quickStart: TestRegistry;
    let temp: { path: string; remove(): Promise<void> };
    let app: LayeredImage;
    let arm: LayeredImage;

    before(async () => {
      temp = await tempDir(`berth-docker-${challenge}`);
      const settings = await authSettings(join(temp.path, 'rules'), { users, rules, extra: { 'auth.challenge': challenge } });
      // docs/auth.md's quick start: users, no rules, anyone may pull.
      const open = await authSettings(join(temp.path, 'open'), { users, extra: { 'auth.challenge': challenge, 'auth.anonymousPull': true } });
      [engine, registry, quickStart] = await Promise.all([startDockerEngine(), startTestRegistry(settings), startTestRegistry(open)]);
      const base = await busyboxLayer();
      app = layeredImage([base, await filesLayer({ 'hello.txt': `hello over ${challenge}\n` })], ['/bin/cat', '/hello.txt']);
      arm = layeredImage([await filesLayer({ 'arch.txt': 'arm64\n' })], ['/bin/sh'], 'arm64');
      await loadIntoDocker(engine, app, 'e2e/app:1', temp.path);
    });
    after(async () => {
      await Promise.all([engine?.stop(), registry?.close(), quickStart?.close()]);
      await temp?.remove();
    });

    test('docker login: a wrong password is refused, the right one accepted', async () => {
      assert.match(await refused(engine, ['login', registry.host, '-u', 'alice', '--password-stdin'], 'wrong'), /unauthorized|401|incorrect username or password/i);
      assert.match(await engine.docker(['login', registry.host, '-u', 'alice', '--password-stdin'], { input: users.alice }), /Login Succeeded/);
    });

    test('push, then pull into an engine that no longer has the image, and run it', async () => {
      const name = `${registry.host}/team/app:1`;
      await engine.docker(['tag', 'e2e/app:1', name]);
      await engine.docker(['push', name]);
      await engine.docker(['rmi', name, 'e2e/app:1']);
      await engine.docker(['pull', name]);
      assert.equal(await imageId(engine, name), app.config.digest);
      assert.equal(await engine.docker(['run', '--rm', '--network', 'none', name]), `hello over ${challenge}\n`);
      await engine.docker(['tag', name, 'e2e/app:1']);
    });

    test('a reader may pull but a push is denied, with a message that names user and repository', async () => {
      await engine.docker(['logout', registry.host]);
      await engine.docker(['login', registry.host, '-u', 'bob', '--password-stdin'], { input: users.bob });
      try {
        await engine.docker(['pull', `${registry.host}/team/app:1`]);
        await engine.docker(['tag', 'e2e/app:1', `${registry.host}/team/bob:1`]);
        assert.match(await refused(engine, ['push', `${registry.host}/team/bob:1`]), /denied: user bob may not push team\/bob/);
      } finally {
        await engine.docker(['logout', registry.host]);
        await engine.docker(['login', registry.host, '-u', 'alice', '--password-stdin'], { input: users.alice });
      }
    });

    test('a multi-platform image made with docker manifest create/push', async () => {
      const amd = `${registry.host}/team/multi:amd64`;
      const armName = `${registry.host}/team/multi:arm64`;
      await engine.docker(['tag', 'e2e/app:1', amd]);
      await engine.docker(['push', amd]);
      await loadIntoDocker(engine, arm, armName, temp.path);
      await engine.docker(['push', armName]);
      const list = `${registry.host}/team/multi:1`;
      await engine.docker(['manifest', 'create', '--insecure', list, amd, armName]);
      const pushed = await engine.docker(['manifest', 'push', '--insecure', list]);
      assert.match(pushed, /sha256:[0-9a-f]{64}/);
      const inspected = JSON.parse(await engine.docker(['manifest', 'inspect', '--insecure', list])) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
      assert.equal(inspected.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
      assert.deepEqual(inspected.manifests.map((entry) => entry.platform.architecture).sort(), ['amd64', 'arm64']);
      await engine.docker(['rmi', amd]);
      await engine.docker(['pull', list]);
      assert.equal(await imageId(engine, list), app.config.digest, 'an amd64 engine pulls the amd64 image');
    });

    test('anonymous pull: docs/auth.md quick start (anonymousPull) and a public rule', async () => {
      await engine.docker(['tag', 'e2e/app:1', `${registry.host}/public/app:1`]);
      await engine.docker(['push', `${registry.host}/public/app:1`]);
      await engine.docker(['login', quickStart.host, '-u', 'alice', '--password-stdin'], { input: users.alice });
      await engine.docker(['tag', 'e2e/app:1', `${quickStart.host}/team/app:1.0`]);
      await engine.docker(['push', `${quickStart.host}/team/app:1.0`]);
      await engine.docker(['logout', quickStart.host]);
      await engine.docker(['logout', registry.host]);
      await engine.docker(['rmi', `${registry.host}/public/app:1`, `${quickStart.host}/team/app:1.0`]);
      try {
        assert.match(await refused(engine, ['pull', `${registry.host}/team/app:1`]), /unauthorized|denied|authentication required|no basic auth credentials/i);
        await engine.docker(['pull', `${quickStart.host}/team/app:1.0`]);
        await engine.docker(['pull', `${registry.host}/public/app:1`]);
        assert.equal(await imageId(engine, `${registry.host}/public/app:1`), app.config.digest);
      } finally {
        await engine.docker(['login', registry.host, '-u', 'alice', '--password-stdin'], { input: users.alice });
      }
    });
  });
}
