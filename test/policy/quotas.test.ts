import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { blobOf, manifestOf, type TestBlob } from '../helpers/images.ts';
import { authSettings, basic } from '../helpers/auth.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { runPolicyCases, type PolicyCase } from './cases.ts';

const blobs = {
  a: blobOf(randomBytes(4000)),
  b: blobOf(randomBytes(4000)),
  c: blobOf(randomBytes(3000)),
  d: blobOf(randomBytes(1900)),
  config: blobOf(Buffer.from('{"architecture":"amd64","os":"linux"}'), mediaTypes.ociConfig),
  small: blobOf(randomBytes(10)),
};
const manifest = manifestOf(
  {
    schemaVersion: 2,
    mediaType: mediaTypes.ociManifest,
    config: { mediaType: blobs.config.mediaType, digest: blobs.config.digest, size: blobs.config.bytes.length },
    layers: [{ mediaType: blobs.a.mediaType, digest: blobs.a.digest, size: blobs.a.bytes.length }],
  },
  mediaTypes.ociManifest,
);

const pushBlob = (registry: TestRegistry, repository: string, blob: TestBlob) =>
  call(registry.url, 'POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { body: blob.bytes, headers: { 'content-type': 'application/octet-stream' } });

// One registry, steps in order: each case sees what the ones before it stored.
const cases: PolicyCase[] = [
  { step: 'a blob within the quota', request: (r) => pushBlob(r, 'team-a/app', blobs.a), status: 201 },
  { step: 'another repository of the quota shares it', request: (r) => pushBlob(r, 'team-a/lib', blobs.b), status: 201 },
  {
    step: 'a blob past the quota',
    request: (r) => pushBlob(r, 'team-a/lib', blobs.c),
    status: 403,
    message: /quota "team-a" is full: 7\.8 KiB of 9\.8 KiB used; blob sha256:\w+ needs 2\.9 KiB/,
  },
  { step: 'a blob the quota already holds costs nothing (upload)', request: (r) => pushBlob(r, 'team-a/new', blobs.a), status: 201 },
  {
    step: 'a blob the quota already holds costs nothing (mount)',
    request: (r) => call(r.url, 'POST', `/v2/team-a/lib/blobs/uploads/?mount=${blobs.a.digest}&from=team-a/app`),
    status: 201,
  },
  { step: 'a small config fits', request: (r) => pushBlob(r, 'team-a/app', blobs.config), status: 201 },
  {
    step: 'a manifest that fits',
    request: (r) => call(r.url, 'PUT', '/v2/team-a/app/manifests/v1', { body: manifest.bytes, headers: { 'content-type': manifest.mediaType } }),
    status: 201,
  },
  { step: 'repositories outside the quota are not limited', request: (r) => pushBlob(r, 'other/app', blobs.c), status: 201 },
  {
    step: 'a mount from outside past the quota',
    request: (r) => call(r.url, 'POST', `/v2/team-a/app/blobs/uploads/?mount=${blobs.c.digest}&from=other/app`),
    status: 403,
    message: /quota "team-a" is full/,
  },
  { step: 'an upload may start while room is left', request: (r) => call(r.url, 'POST', '/v2/team-a/app/blobs/uploads/'), status: 202 },
  { step: 'the last blob that would not fit', request: (r) => pushBlob(r, 'team-a/app', blobs.d), status: 403, message: /quota "team-a" is full/ },
  { step: 'a repository within the count', request: (r) => pushBlob(r, 'few/one', blobs.small), status: 201 },
  { step: 'the second repository', request: (r) => pushBlob(r, 'few/two', blobs.small), status: 201 },
  {
    step: 'a third repository',
    request: (r) => pushBlob(r, 'few/three', blobs.small),
    status: 403,
    message: /quota "few\/\*" allows 2 repositories and 2 exist: few\/three cannot be created/,
  },
  { step: 'no upload starts in a third repository', request: (r) => call(r.url, 'POST', '/v2/few/three/blobs/uploads/'), status: 403, message: /allows 2 repositories/ },
  { step: 'an existing repository of a full count', request: (r) => pushBlob(r, 'few/one', blobs.c), status: 201 },
  { step: 'nested names are not matched by one *', request: (r) => pushBlob(r, 'few/deep/three', blobs.small), status: 201 },
];

describe('quotas', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({
      'gc.interval': 0,
      quotas: [
        { name: 'team-a', repositories: ['team-a/**'], maxBytes: 10_000 },
        { repositories: ['few/*'], maxRepositories: 2 },
      ],
    });
  });
  after(() => registry.close());

  runPolicyCases(cases, () => registry);

  it('reports usage through GET /berth/usage', async () => {
    const reply = await call(registry.url, 'GET', '/berth/usage?repositories=few/**&repositories=other/*');
    assert.equal(reply.status, 200);
    assert.match(reply.headers.get('content-type') ?? '', /^application\/json/);
    const body = reply.json<{ quotas: Record<string, unknown>[]; selection: Record<string, unknown> }>();
    const used = 4000 + 4000 + blobs.config.bytes.length + manifest.bytes.length;
    assert.deepEqual(body.quotas, [
      { name: 'team-a', repositories: ['team-a/**'], usedBytes: used, maxBytes: 10_000, usedRepositories: 3 },
      { name: 'few/*', repositories: ['few/*'], usedBytes: 10 + 3000, usedRepositories: 2, maxRepositories: 2 },
    ]);
    assert.deepEqual(body.selection, { repositories: ['few/**', 'other/*'], usedBytes: 10 + 3000, usedRepositories: 4 });
    const bad = await call(registry.url, 'GET', '/berth/usage?repositories=Team%20A');
    assert.equal(bad.status, 400);
    assert.equal(bad.json<{ errors: { code: string }[] }>().errors[0]?.code, 'NAME_INVALID');
  });

  it('answers usage only to signed-in callers when access control is on', async () => {
    const dir = await tempDir('berth-usage-auth');
    const guarded = await startTestRegistry({ 'gc.interval': 0, ...(await authSettings(dir.path, { users: { alice: 'secret' } })) });
    try {
      assert.equal((await call(guarded.url, 'GET', '/berth/usage')).status, 401);
      const reply = await call(guarded.url, 'GET', '/berth/usage', { headers: { authorization: basic('alice', 'secret') } });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.json(), { quotas: [] });
    } finally {
      await guarded.close();
      await dir.remove();
    }
  });

  it('counts only what the caller may pull, the same whether hidden repositories exist or not', async () => {
    const dir = await tempDir('berth-usage-hidden');
    const rules = {
      admins: ['root'],
      rules: [
        { repositories: 'private/**', grants: { alice: ['pull' as const, 'push' as const] } },
        { repositories: 'public/**', anonymous: ['pull' as const], grants: { '*': ['pull' as const] } },
      ],
    };
    const users = { root: 'root-pw', alice: 'alice-pw', bob: 'bob-pw' };
    const guarded = await startTestRegistry({
      'gc.interval': 0,
      quotas: [{ name: 'all', repositories: ['**'], maxBytes: 1_000_000 }],
      ...(await authSettings(dir.path, { users, rules })),
    });
    const usage = async (authorization: string, glob: string) => {
      const reply = await call(guarded.url, 'GET', `/berth/usage?repositories=${glob}`, { headers: { authorization } });
      assert.equal(reply.status, 200, reply.text);
      const body = reply.json<{ quotas: { usedBytes: number; usedRepositories: number }[]; selection: { usedBytes: number; usedRepositories: number } }>();
      return { selection: [body.selection.usedBytes, body.selection.usedRepositories], quota: [body.quotas[0]?.usedBytes, body.quotas[0]?.usedRepositories] };
    };
    try {
      const bob = basic('bob', 'bob-pw');
      const before = await usage(bob, 'private/se*');
      for (const [name, blob] of [
        ['private/secret', blobs.c],
        ['public/app', blobs.small],
      ] as const) {
        const pushed = await call(guarded.url, 'POST', `/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
          headers: {
            authorization: basic(name.startsWith('private') ? 'alice' : 'root', name.startsWith('private') ? 'alice-pw' : 'root-pw'),
            'content-type': 'application/octet-stream',
          },
          body: blob.bytes,
        });
        assert.equal(pushed.status, 201, pushed.text);
      }
      assert.deepEqual(await usage(bob, 'private/se*'), { selection: [0, 0], quota: [10, 1] }, 'bob sees public/app only');
      assert.deepEqual(before.selection, [0, 0]);
      assert.deepEqual(await usage(bob, 'private/sa*'), await usage(bob, 'private/se*'));
      assert.deepEqual((await usage(basic('alice', 'alice-pw'), 'private/se*')).selection, [3000, 1]);
      assert.deepEqual(await usage(basic('root', 'root-pw'), '**'), { selection: [3010, 2], quota: [3010, 2] });
      const token = (await call(guarded.url, 'GET', '/token?service=berth')).json<{ token: string }>().token;
      assert.equal(
        (await call(guarded.url, 'GET', '/berth/usage?repositories=private/se*', { headers: { authorization: `Bearer ${token}` } })).status,
        401,
        'an anonymous token is anonymous',
      );
    } finally {
      await guarded.close();
      await dir.remove();
    }
  });
});
