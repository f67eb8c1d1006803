import assert from 'node:assert/strict';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { access } from 'node:fs/promises';
import { authSettings } from '../helpers/auth.ts';
import { containerdUnavailable, startContainerd } from '../helpers/containerd.ts';
import { writeOciLayout } from '../helpers/oci-layout.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { runnableImage } from '../helpers/runnable-image.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands, run } from '../helpers/tools.ts';

const users = { alice: 'alice-secret', bob: 'bob-secret' };
const rules = {
  rules: [
    { repositories: '**', grants: { alice: ['pull' as const, 'push' as const, 'delete' as const], bob: ['pull' as const] } },
    { repositories: 'public/**', anonymous: ['pull' as const], grants: { alice: ['pull' as const, 'push' as const] } },
  ],
};

/** Runs a command that should fail; resolves to its error output. */
async function fails(command: string, args: string[]): Promise<string> {
  try {
    await run(command, args);
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail(`${command} ${args.join(' ')} succeeded`);
}

for (const challenge of ['basic', 'token'] as const) {
  describe(`real clients over HTTPS with a self-signed certificate, ${challenge} challenge`, () => {
    let temp: { path: string; remove(): Promise<void> };
    let registry: TestRegistry;
    let certs: string;
    let layout: string;
    let host: string;

    before(async () => {
      temp = await tempDir(`berth-clients-${challenge}`);
      const settings = await authSettings(temp.path, { users, rules, extra: { 'auth.challenge': challenge, 'tls.selfSigned': true, 'tls.hosts': ['127.0.0.1', 'localhost'] } });
      registry = await startTestRegistry(settings);
      host = registry.host;
      assert.ok(registry.url.startsWith('https://'));
      certs = join(temp.path, 'certs');
      await mkdir(certs);
      await copyFile(registry.server.security.caCert as string, join(certs, 'ca.crt'));
      layout = join(temp.path, 'layout');
      await writeOciLayout(layout, await runnableImage({ 'hello.txt': `hello from ${challenge}\n` }), 'v1');
    });
    after(async () => {
      await registry?.close();
      await temp?.remove();
    });

    it('skopeo logs in, pushes and pulls; wrong passwords, readers and anonymous clients are refused', { skip: missingCommands('skopeo') }, async () => {
      const authfile = join(temp.path, 'skopeo-auth.json');
      assert.match(await run('skopeo', ['login', '--cert-dir', certs, '--authfile', authfile, '-u', 'alice', '-p', users.alice, host]), /Login Succeeded/);
      assert.match(
        await fails('skopeo', ['login', '--cert-dir', certs, '--authfile', join(temp.path, 'bad.json'), '-u', 'alice', '-p', 'wrong', host]),
        /invalid username\/password|unauthorized/i,
      );
      await run('skopeo', ['copy', '--dest-cert-dir', certs, '--authfile', authfile, `oci:${layout}:v1`, `docker://${host}/team/app:v1`]);
      await run('skopeo', ['copy', '--dest-cert-dir', certs, '--dest-creds', `alice:${users.alice}`, `oci:${layout}:v1`, `docker://${host}/public/app:v1`]);
      const inspected = JSON.parse(await run('skopeo', ['inspect', '--cert-dir', certs, '--creds', `bob:${users.bob}`, `docker://${host}/team/app:v1`])) as { Layers: string[] };
      assert.equal(inspected.Layers.length, 1);
      await run('skopeo', ['copy', '--src-cert-dir', certs, '--src-creds', `bob:${users.bob}`, `docker://${host}/team/app:v1`, `oci:${join(temp.path, 'pulled')}:v1`]);
      assert.match(
        await fails('skopeo', ['copy', '--dest-cert-dir', certs, '--dest-creds', `bob:${users.bob}`, `oci:${layout}:v1`, `docker://${host}/team/bob:v1`]),
        /denied|unauthorized/i,
      );
      await run('skopeo', ['inspect', '--cert-dir', certs, '--no-creds', `docker://${host}/public/app:v1`]);
      assert.match(await fails('skopeo', ['inspect', '--cert-dir', certs, '--no-creds', `docker://${host}/team/app:v1`]), /unauthorized|authentication required/i);
      assert.match(await fails('skopeo', ['inspect', `docker://${host}/public/app:v1`, '--no-creds']), /certificate/i, 'without the CA the certificate is not trusted');
    });

    it('podman and buildah log in, pull, build and push', { skip: missingCommands('podman', 'buildah', 'skopeo') }, async () => {
      const storage = ['--root', join(temp.path, 'storage'), '--runroot', join(temp.path, 'run'), '--storage-driver', 'vfs'];
      const authfile = join(temp.path, 'podman-auth.json');
      await run('skopeo', ['copy', '--dest-cert-dir', certs, '--dest-creds', `alice:${users.alice}`, `oci:${layout}:v1`, `docker://${host}/team/base:v1`]);
      assert.match(await run('podman', [...storage, 'login', '--cert-dir', certs, '--authfile', authfile, '-u', 'alice', '-p', users.alice, host]), /Login Succeeded/);
      assert.match(
        await fails('podman', [...storage, 'login', '--cert-dir', certs, '--authfile', join(temp.path, 'bad.json'), '-u', 'alice', '-p', 'wrong', host]),
        /invalid username\/password|unauthorized/i,
      );
      await run('podman', [...storage, 'pull', '--cert-dir', certs, '--authfile', authfile, `${host}/team/base:v1`]);
      await run('podman', [...storage, 'push', '--cert-dir', certs, '--authfile', authfile, `${host}/team/base:v1`, `${host}/team/podman:v1`]);
      const container = (await run('buildah', [...storage, 'from', '--pull-never', `${host}/team/base:v1`])).trim();
      const file = join(temp.path, 'added.txt');
      await writeFile(file, 'added by buildah\n');
      await run('buildah', [...storage, 'copy', container, file, '/added.txt']);
      await run('buildah', [...storage, 'commit', container, 'built:v1']);
      await run('buildah', [...storage, 'push', '--cert-dir', certs, '--authfile', authfile, 'built:v1', `docker://${host}/team/buildah:v1`]);
      const built = JSON.parse(await run('skopeo', ['inspect', '--cert-dir', certs, '--creds', `bob:${users.bob}`, `docker://${host}/team/buildah:v1`])) as { Layers: string[] };
      assert.equal(built.Layers.length, 2);
      assert.match(
        await fails('podman', [...storage, 'push', '--cert-dir', certs, '--creds', `bob:${users.bob}`, `${host}/team/base:v1`, `${host}/team/bob:v1`]),
        /denied|unauthorized/i,
      );
    });

    it('containerd (ctr) pulls and pushes with credentials', { skip: containerdUnavailable() || missingCommands('skopeo') }, async () => {
      await access(layout);
      await run('skopeo', ['copy', '--dest-cert-dir', certs, '--dest-creds', `alice:${users.alice}`, `oci:${layout}:v1`, `docker://${host}/team/ctr-base:v1`]);
      const hosts = join(temp.path, 'hosts');
      await mkdir(join(hosts, host), { recursive: true });
      await writeFile(join(hosts, host, 'hosts.toml'), `server = "https://${host}"\n[host."https://${host}"]\n  ca = "${join(certs, 'ca.crt')}"\n`);
      const containerd = await startContainerd(join(temp.path, 'containerd'));
      try {
        const ctr = ['--address', containerd.socket, 'images'];
        await run('ctr', [...ctr, 'pull', '--hosts-dir', hosts, '--user', `bob:${users.bob}`, '--snapshotter', 'native', `${host}/team/ctr-base:v1`]);
        assert.match(await fails('ctr', [...ctr, 'pull', '--hosts-dir', hosts, '--user', 'bob:wrong', '--snapshotter', 'native', `${host}/team/ctr-base:v1`]), /401|unauthorized/i);
        await run('ctr', [...ctr, 'tag', `${host}/team/ctr-base:v1`, `${host}/team/ctr:v1`]);
        await run('ctr', [...ctr, 'push', '--hosts-dir', hosts, '--user', `alice:${users.alice}`, `${host}/team/ctr:v1`]);
        await run('skopeo', ['inspect', '--cert-dir', certs, '--creds', `bob:${users.bob}`, `docker://${host}/team/ctr:v1`]);
      } finally {
        await containerd.stop();
      }
    });
  });
}
