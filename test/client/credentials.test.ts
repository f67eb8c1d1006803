import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authFileCredentials } from '../../src/client/credentials.ts';
import { defaultAuthFiles } from '../../src/config/auth-files.ts';
import { tempDir } from '../helpers/tmp.ts';

const basic = (user: string, password: string) => Buffer.from(`${user}:${password}`).toString('base64');

describe('credentials from docker and podman auth files', () => {
  let temp: { path: string; remove(): Promise<void> };
  let dockerConfig: string;
  let podmanAuth: string;

  before(async () => {
    temp = await tempDir('berth-credentials');
    dockerConfig = join(temp.path, 'config.json');
    podmanAuth = join(temp.path, 'auth.json');
    await writeFile(
      dockerConfig,
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: basic('hubuser', 'hubpass') },
          'registry.example.com:5000': { auth: basic('example', 'p:with:colons') },
          'https://tokens.example.com': { identitytoken: 'refresh-me' },
        },
        credHelpers: { 'helped.example.com': 'berthtest' },
      }),
    );
    await writeFile(
      podmanAuth,
      JSON.stringify({
        auths: {
          'quay.io': { auth: basic('quay', 'whole-registry') },
          'quay.io/team': { auth: basic('quay', 'team-only') },
          'quay.io/team/app': { auth: basic('quay', 'app-only') },
        },
      }),
    );
    // A credential helper is a program on PATH: docker-credential-<name> get, server on stdin.
    const bin = join(temp.path, 'bin');
    await mkdir(bin);
    const helper = join(bin, 'docker-credential-berthtest');
    await writeFile(helper, '#!/bin/sh\nread server\nprintf \'{"ServerURL":"%s","Username":"helped","Secret":"from-helper"}\' "$server"\n');
    await chmod(helper, 0o755);
    process.env['PATH'] = `${bin}:${process.env['PATH'] ?? ''}`;
  });
  after(() => temp.remove());

  test('Docker Hub entries answer for docker.io and its API host', async () => {
    const source = authFileCredentials([dockerConfig]);
    const expected = { kind: 'basic', username: 'hubuser', password: 'hubpass' };
    assert.deepEqual(await source.lookup('docker.io'), expected);
    assert.deepEqual(await source.lookup('registry-1.docker.io'), expected);
  });

  test('host:port entries, passwords with colons, identity tokens, missing hosts', async () => {
    const source = authFileCredentials([dockerConfig]);
    assert.deepEqual(await source.lookup('registry.example.com:5000'), { kind: 'basic', username: 'example', password: 'p:with:colons' });
    assert.deepEqual(await source.lookup('tokens.example.com'), { kind: 'identity-token', token: 'refresh-me' });
    assert.equal(await source.lookup('unknown.example.com'), undefined);
  });

  test('podman entries for a namespace or repository win over the registry entry', async () => {
    const source = authFileCredentials([podmanAuth]);
    assert.deepEqual(await source.lookup('quay.io', 'team/app'), { kind: 'basic', username: 'quay', password: 'app-only' });
    assert.deepEqual(await source.lookup('quay.io', 'team/other'), { kind: 'basic', username: 'quay', password: 'team-only' });
    assert.deepEqual(await source.lookup('quay.io', 'elsewhere/x'), { kind: 'basic', username: 'quay', password: 'whole-registry' });
  });

  test('credential helpers are run for their hosts', async () => {
    const source = authFileCredentials([dockerConfig]);
    assert.deepEqual(await source.lookup('helped.example.com'), { kind: 'basic', username: 'helped', password: 'from-helper' });
  });

  test('the first file that knows a host answers; missing files are skipped', async () => {
    const source = authFileCredentials([join(temp.path, 'absent.json'), podmanAuth, dockerConfig]);
    assert.deepEqual(await source.lookup('quay.io'), { kind: 'basic', username: 'quay', password: 'whole-registry' });
    assert.deepEqual(await source.lookup('docker.io'), { kind: 'basic', username: 'hubuser', password: 'hubpass' });
  });

  test('default locations follow podman and docker', () => {
    assert.deepEqual(defaultAuthFiles({ HOME: '/home/u', XDG_RUNTIME_DIR: '/run/user/1', REGISTRY_AUTH_FILE: '/etc/auth.json' }), [
      '/etc/auth.json',
      '/run/user/1/containers/auth.json',
      '/home/u/.config/containers/auth.json',
      '/home/u/.docker/config.json',
    ]);
    assert.deepEqual(defaultAuthFiles({ HOME: '/home/u', DOCKER_CONFIG: '/cfg' }), ['/home/u/.config/containers/auth.json', '/cfg/config.json']);
  });
});
