import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '../../../src/config/load.ts';

const load = (entry: Record<string, unknown>) => loadConfig({ env: {}, overrides: { repositories: [{ prefix: 'cf/', kind: 'droplet', ...entry }] } });

test('droplet repositories: defaults', async () => {
  const [entry] = (await load({})).repositories;
  assert.deepEqual(entry, {
    prefix: 'cf/',
    kind: 'droplet',
    rootfsCheckInterval: 10_000,
    previousRootfsRetention: 86_400_000,
    architecture: 'amd64',
    owner: { uid: 2000, gid: 2000 },
    keepDroplets: 5,
    environment: {},
  });
  const [cc] = (await load({ cloudController: { url: 'https://api.example.com', clientId: 'c', clientSecret: 's' } })).repositories;
  assert.deepEqual(cc !== undefined && 'cloudController' in cc ? cc.cloudController : undefined, {
    url: 'https://api.example.com',
    clientId: 'c',
    clientSecret: 's',
    timeout: 30_000,
    downloadIdleTimeout: 60_000,
    lookupCacheTtl: 10_000,
  });
});

test('droplet repositories: invalid settings name their key', async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ cloudController: { url: 'https://api.example.com', clientId: 'c' } }, /repositories\.0\.cloudController: set exactly one of clientSecret and clientSecretFile/],
    [{ cloudController: { url: 'https://api.example.com', clientId: 'c', clientSecret: 's', clientSecretFile: '/s' } }, /set exactly one/],
    [{ cloudController: { url: 'ftp://api', clientId: 'c', clientSecret: 's' } }, /repositories\.0\.cloudController\.url/],
    [{ owner: { uid: -1 } }, /repositories\.0\.owner\.uid/],
    [{ rootfsCheckInterval: 'soon' }, /repositories\.0\.rootfsCheckInterval/],
    [{ unknown: true }, /repositories\.0\.unknown: unknown key/],
    [{ environment: { 'NOT-A-NAME': 'x' } }, /repositories\.0\.environment/],
  ];
  for (const [entry, message] of cases) await assert.rejects(load(entry), message);
});

test('droplet repositories: operator environment per prefix', async () => {
  const [entry] = (await load({ environment: { MEMORY_LIMIT: '512m', CF_STACK: 'cflinuxfs4' } })).repositories;
  assert.deepEqual(entry !== undefined && 'environment' in entry ? entry.environment : undefined, { MEMORY_LIMIT: '512m', CF_STACK: 'cflinuxfs4' });
});
