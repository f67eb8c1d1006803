import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, environmentName, loadConfig } from '../../src/config/load.ts';
import { tempDir } from '../helpers/tmp.ts';

const dir = await tempDir('berth-config');
after(() => dir.remove());

async function file(name: string, text: string): Promise<string> {
  const path = join(dir.path, name);
  await writeFile(path, text);
  return path;
}

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('expected the configuration to be refused');
}

describe('configuration', () => {
  it('has defaults that start a registry on 127.0.0.1:5000 under ./data', async () => {
    const config = await loadConfig({ env: {} });
    assert.equal(config.listen, '127.0.0.1:5000');
    assert.equal(config.dataDir, 'data');
    assert.equal(config.registry.deletes, true);
    assert.equal(config.registry.maxManifestBytes, 4 * 1024 * 1024);
    assert.equal(config.server.shutdownTimeout, 30_000);
  });

  it('reads YAML, then BERTH_* variables, then flags, each winning over the one before', async () => {
    const path = await file('layers.yaml', 'listen: 0.0.0.0:6000\ndataDir: /srv/berth\nregistry:\n  deletes: false\n  maxManifestBytes: 1MiB\n');
    const fromFile = await loadConfig({ file: path, env: {} });
    assert.equal(fromFile.listen, '0.0.0.0:6000');
    assert.equal(fromFile.registry.deletes, false);
    assert.equal(fromFile.registry.maxManifestBytes, 1024 * 1024);
    const fromEnv = await loadConfig({ file: path, env: { BERTH_LISTEN: '127.0.0.1:7000', BERTH_REGISTRY_DELETES: 'true', BERTH_SERVER_SHUTDOWN_TIMEOUT: '5s' } });
    assert.equal(fromEnv.listen, '127.0.0.1:7000');
    assert.equal(fromEnv.registry.deletes, true);
    assert.equal(fromEnv.server.shutdownTimeout, 5000);
    const fromFlags = await loadConfig({ file: path, env: { BERTH_LISTEN: '127.0.0.1:7000' }, overrides: { listen: '[::1]:8000', dataDir: 'here' } });
    assert.equal(fromFlags.listen, '[::1]:8000');
    assert.equal(fromFlags.dataDir, 'here');
  });

  it('names environment variables after the key path', () => {
    assert.equal(environmentName(['storage', 'fs', 'path']), 'BERTH_STORAGE_FS_PATH');
    assert.equal(environmentName(['registry', 'maxManifestBytes']), 'BERTH_REGISTRY_MAX_MANIFEST_BYTES');
  });

  it('refuses an unknown key, naming it and the file', async () => {
    const path = await file('unknown.yaml', 'registry:\n  delets: true\n');
    const message = await failure(loadConfig({ file: path, env: {} }));
    assert.match(message, /registry\.delets: unknown key/);
    assert.match(message, /unknown\.yaml/);
  });

  it('refuses a bad value, naming the key and the variable it came from', async () => {
    const message = await failure(loadConfig({ env: { BERTH_REGISTRY_DELETES: 'perhaps' } }));
    assert.match(message, /registry\.deletes/);
    assert.match(message, /BERTH_REGISTRY_DELETES/);
    assert.match(await failure(loadConfig({ env: { BERTH_LISTEN: 'nowhere' } })), /listen: expected HOST:PORT/);
    assert.match(await failure(loadConfig({ env: { BERTH_SERVER_SHUTDOWN_TIMEOUT: 'soon' } })), /server\.shutdownTimeout/);
  });

  it("words zod's own refusals in English", async () => {
    assert.equal(
      await failure(loadConfig({ env: { BERTH_REGISTRY_DELETES: 'perhaps' } })),
      'invalid configuration:\n  registry.deletes: Invalid input: expected boolean, received string (from environment variable BERTH_REGISTRY_DELETES)',
    );
    assert.match(await failure(loadConfig({ env: { BERTH_SERVER_WORKERS: '0' } })), /server\.workers: Too small: expected number to be >=1/);
  });

  it('names the setting a driver needs, every time it is missing', async () => {
    for (let attempt = 0; attempt < 2; attempt++) {
      assert.match(await failure(loadConfig({ env: { BERTH_STORAGE_DRIVER: 's3' } })), /\n {2}storage\.s3\.bucket: required when driver is s3$/);
      assert.match(
        await failure(loadConfig({ env: { BERTH_METADATA_DRIVER: 'postgres' } })),
        /\n {2}metadata\.postgres\.url: required when driver is postgres \(or set metadata\.postgres\.host\)/,
      );
    }
  });

  it('refuses an unknown BERTH_ variable', async () => {
    assert.match(await failure(loadConfig({ env: { BERTH_LISTN: 'x' } })), /unknown environment variable BERTH_LISTN/);
  });

  it('refuses a missing or malformed file with its name', async () => {
    assert.match(await failure(loadConfig({ file: join(dir.path, 'absent.yaml'), env: {} })), /cannot read configuration file .*absent\.yaml/);
    const path = await file('broken.yaml', 'listen: [unclosed\n');
    assert.match(await failure(loadConfig({ file: path, env: {} })), /broken\.yaml: not valid YAML/);
  });

  it('takes structured values such as repository kinds from YAML in a variable', async () => {
    const config = await loadConfig({ env: { BERTH_REPOSITORIES: '[{prefix: "team/", kind: hosted}]' } });
    assert.deepEqual(config.repositories, [{ prefix: 'team/', kind: 'hosted' }]);
    assert.match(await failure(loadConfig({ env: { BERTH_REPOSITORIES: '[{prefix: "Team/", kind: hosted}]' } })), /repositories\.0\.prefix/);
  });
});

describe('configuration of pull-through caches', () => {
  it('reads budgets, referrers, the rate-limit reserve and sync schedules, with their defaults', async () => {
    const path = await file(
      'caches.yaml',
      [
        'proxyCache:',
        '  maxBytes: 200GiB',
        'repositories:',
        '  - prefix: docker.io/',
        '    kind: proxy',
        '    upstream: https://registry-1.docker.io',
        '    maxBytes: 150GiB',
        '    sync:',
        '      interval: 6h',
        '      repositories:',
        '        - name: library/alpine',
        '          tags: ["3.*"]',
        '        - name: library/busybox',
        '',
      ].join('\n'),
    );
    const config = await loadConfig({ file: path, env: {} });
    assert.equal(config.proxyCache.maxBytes, 200 * 1024 ** 3);
    assert.equal(config.proxyCache.evictionInterval, 60_000);
    const entry = config.repositories[0];
    assert.ok(entry?.kind === 'proxy');
    assert.equal(entry.maxBytes, 150 * 1024 ** 3);
    assert.equal(entry.referrers, true);
    assert.equal(entry.rateLimitReserve, 0.1);
    assert.deepEqual(entry.sync, {
      interval: 6 * 3_600_000,
      repositories: [
        { name: 'library/alpine', tags: ['3.*'] },
        { name: 'library/busybox', tags: ['*'] },
      ],
    });
  });

  it('refuses a budget on a cache that takes pushes, naming the key', async () => {
    const path = await file('budget-pushes.yaml', 'repositories:\n  - prefix: up/\n    kind: proxy\n    upstream: https://ghcr.io\n    pushes: true\n    maxBytes: 1GiB\n');
    assert.match(await failure(loadConfig({ file: path, env: {} })), /repositories\.0\.maxBytes.*cannot tell them from pushed ones/s);
  });
});
