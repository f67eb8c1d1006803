import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import type * as z from 'zod/mini';
import type { accessRulesConfig } from '../../src/config/auth.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { authSettings, basic, writeUsers } from '../helpers/auth.ts';
import { randomImage } from '../helpers/images.ts';
import { errorCode, injectPushImage } from '../helpers/inject.ts';
import { createTestApp, type TestApp } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

const users = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw', root: 'root-pw' };
const rules = {
  admins: ['root'],
  groups: { team: ['alice', 'bob'] },
  rules: [
    { repositories: '**', grants: { '*': ['pull'] } },
    { repositories: 'team/**', grants: { '@team': ['pull', 'push', 'delete'] } },
    { repositories: 'team/secret/*', grants: { alice: ['pull', 'push'] } },
    { repositories: 'public/*', anonymous: ['pull'], grants: { carol: ['push'] } },
  ],
} satisfies z.input<typeof accessRulesConfig>;

describe('access rules, catalog, uploads and mounts', () => {
  let temp: { path: string; remove(): Promise<void> };
  let test: TestApp;
  const as = (user: keyof typeof users) => basic(user, users[user]);

  before(async () => {
    temp = await tempDir('berth-access');
    test = await createTestApp(await authSettings(temp.path, { users, rules, rulesFile: true }), { captureLogs: true });
    for (const name of ['public/a', 'public/b', 'team/app', 'team/secret/x', 'team/tools', 'other/z']) {
      await injectPushImage(test.app, as('root'), name, 'v1', randomImage({ layers: 1 }));
    }
  });
  after(async () => {
    await test.close();
    await temp.remove();
  });

  const catalog = async (authorization: string | undefined, query = '') => {
    const response = await test.app.inject({ method: 'GET', url: `/v2/_catalog${query}`, headers: authorization === undefined ? {} : { authorization } });
    assert.equal(response.statusCode, 200, response.body);
    return { repositories: (JSON.parse(response.body) as { repositories: string[] }).repositories, link: response.headers['link'] };
  };

  it('lists in the catalog only what the caller may pull', async () => {
    assert.deepEqual((await catalog(undefined)).repositories, ['public/a', 'public/b']);
    // team/** is longer than ** and names only @team, so carol sees no team/ repository.
    assert.deepEqual((await catalog(as('carol'))).repositories, ['other/z', 'public/a', 'public/b']);
    assert.deepEqual((await catalog(as('bob'))).repositories, ['other/z', 'public/a', 'public/b', 'team/app', 'team/tools']);
    assert.deepEqual((await catalog(as('alice'))).repositories, ['other/z', 'public/a', 'public/b', 'team/app', 'team/secret/x', 'team/tools']);
    assert.deepEqual((await catalog(as('root'))).repositories, ['other/z', 'public/a', 'public/b', 'team/app', 'team/secret/x', 'team/tools']);
  });

  it('keeps catalog pages full and the Link header right when names are hidden', async () => {
    const first = await catalog(undefined, '?n=1');
    assert.deepEqual(first.repositories, ['public/a']);
    assert.equal(first.link, '</v2/_catalog?n=1&last=public%2Fa>; rel="next"');
    const second = await catalog(undefined, '?n=1&last=public%2Fa');
    assert.deepEqual(second.repositories, ['public/b']);
    assert.equal(second.link, undefined);
    const bob = await catalog(as('bob'), '?n=3&last=other%2Fz');
    assert.deepEqual(bob.repositories, ['public/a', 'public/b', 'team/app']);
    assert.equal(bob.link, '</v2/_catalog?n=3&last=team%2Fapp>; rel="next"');
    assert.deepEqual((await catalog(as('bob'), '?n=3&last=team%2Fapp')).repositories, ['team/tools']);
  });

  it('lets the longest matching rule decide alone', async () => {
    const get = (user: keyof typeof users, name: string) => test.app.inject({ method: 'GET', url: `/v2/${name}/tags/list`, headers: { authorization: as(user) } });
    assert.equal((await get('bob', 'team/secret/x')).statusCode, 403, 'team/secret/* grants bob nothing, though team/** would');
    assert.equal((await get('alice', 'team/secret/x')).statusCode, 200);
    assert.equal((await get('carol', 'other/z')).statusCode, 200, '** lets every signed-in user pull');
    const push = await test.app.inject({ method: 'POST', url: '/v2/public/c/blobs/uploads/', headers: { authorization: as('carol') } });
    assert.equal(push.statusCode, 202, 'a push-only grant pushes');
  });

  it('binds an upload to the user who started it', async () => {
    const started = await test.app.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/', headers: { authorization: as('alice') } });
    assert.equal(started.statusCode, 202);
    const location = started.headers['location'] as string;
    const chunk = randomBytes(100);
    for (const user of ['bob', 'root'] as const) {
      for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
        const url = method === 'PUT' ? `${location}?digest=${digestOf(chunk)}` : location;
        const response = await test.app.inject({
          method,
          url,
          headers: { authorization: as(user), 'content-type': 'application/octet-stream' },
          ...(method === 'PATCH' || method === 'PUT' ? { payload: chunk } : {}),
        });
        assert.equal(response.statusCode, 404, `${user} ${method}`);
        assert.equal(errorCode(response), 'BLOB_UPLOAD_UNKNOWN');
      }
    }
    const finished = await test.app.inject({
      method: 'PUT',
      url: `${location}?digest=${digestOf(chunk)}`,
      headers: { authorization: as('alice'), 'content-type': 'application/octet-stream' },
      payload: chunk,
    });
    assert.equal(finished.statusCode, 201, finished.body);
  });

  it('mounts only from repositories the caller may pull, and never tells whether the blob is there', async () => {
    const image = randomImage({ layers: 1 });
    await injectPushImage(test.app, as('alice'), 'team/secret/x', 'mountable', image);
    const layer = image.layers[0]?.digest as string;
    const mount = (user: keyof typeof users, digest: string, to = 'team/app') =>
      test.app.inject({ method: 'POST', url: `/v2/${to}/blobs/uploads/?mount=${digest}&from=team/secret/x`, headers: { authorization: as(user) } });
    assert.equal((await mount('alice', layer)).statusCode, 201, 'alice may pull team/secret/x');
    const bobExisting = await mount('bob', layer);
    const bobMissing = await mount('bob', digestOf(randomBytes(10)));
    assert.equal(bobExisting.statusCode, 202, 'bob may not pull the source: a plain upload starts instead');
    assert.equal(bobMissing.statusCode, 202);
    assert.deepEqual(Object.keys(bobExisting.headers).sort(), Object.keys(bobMissing.headers).sort());
    const blob = await test.app.inject({ method: 'HEAD', url: `/v2/team/app/blobs/${layer}`, headers: { authorization: as('bob') } });
    assert.equal(blob.statusCode, 200, 'the blob reached team/app through alice, not through bob');
  });

  it('a malformed mount starts a plain upload only for a caller who may push, and tells nothing about the source', async () => {
    const image = randomImage({ layers: 1 });
    await injectPushImage(test.app, as('alice'), 'team/secret/x', 'malformed', image);
    const layer = image.layers[0]?.digest as string;
    const post = (user: keyof typeof users | undefined, to: string, query: string) =>
      test.app.inject({ method: 'POST', url: `/v2/${to}/blobs/uploads/?${query}`, headers: user === undefined ? {} : { authorization: as(user) } });
    for (const query of ['mount=sha256:bad&from=team/secret/x', `mount=${layer}&from=../x`, `mount=${layer}&from=`]) {
      const bob = await post('bob', 'team/app', query);
      assert.equal(bob.statusCode, 202, `${query}: ${bob.body}`);
      assert.deepEqual(Object.keys(bob.headers).sort(), Object.keys((await post('bob', 'team/app', `mount=${layer}&from=team/secret/x`)).headers).sort());
      assert.equal(errorCode(await post('carol', 'team/app', query)), 'DENIED', `${query}: carol may not push team/app`);
      assert.equal((await post(undefined, 'team/app', query)).statusCode, 401, `${query}: anonymous callers may not push`);
    }
  });

  it('mounts without `from` only from a repository the caller may pull', async () => {
    const image = randomImage({ layers: 1 });
    await injectPushImage(test.app, as('alice'), 'team/secret/x', 'automatic', image);
    const layer = image.layers[0]?.digest as string;
    const mount = (user: keyof typeof users, digest: string, to: string) =>
      test.app.inject({ method: 'POST', url: `/v2/${to}/blobs/uploads/?mount=${digest}`, headers: { authorization: as(user) } });
    const bobExisting = await mount('bob', layer, 'team/bob-auto');
    const bobMissing = await mount('bob', digestOf(randomBytes(10)), 'team/bob-auto');
    assert.equal(bobExisting.statusCode, 202, 'only team/secret/x holds the layer, and bob may not pull it');
    assert.deepEqual(Object.keys(bobExisting.headers).sort(), Object.keys(bobMissing.headers).sort());
    assert.equal((await test.app.inject({ method: 'HEAD', url: `/v2/team/bob-auto/blobs/${layer}`, headers: { authorization: as('bob') } })).statusCode, 404);
    const alice = await mount('alice', layer, 'team/alice-auto');
    assert.equal(alice.statusCode, 201, 'alice may pull team/secret/x');
    assert.equal(alice.headers['location'], `/v2/team/alice-auto/blobs/${layer}`);
    assert.equal((await mount('bob', layer, 'team/bob-auto')).statusCode, 201, 'now team/alice-auto, which bob may pull, holds it');
  });

  it('applies changed rules and users files without a restart', async () => {
    const rulesFile = join(temp.path, 'rules.yaml');
    const tags = (user: string, password: string) => test.app.inject({ method: 'GET', url: '/v2/other/z/tags/list', headers: { authorization: basic(user, password) } });
    assert.equal((await tags('dave', 'dave-pw')).statusCode, 401);
    await writeUsers(join(temp.path, 'htpasswd'), { ...users, dave: 'dave-pw' });
    await test.reloadFiles();
    assert.equal((await tags('dave', 'dave-pw')).statusCode, 200);
    await writeUsers(join(temp.path, 'htpasswd'), { ...users, dave: 'new-pw' });
    await test.reloadFiles();
    assert.equal((await tags('dave', 'dave-pw')).statusCode, 401, 'the cached old password no longer works');
    assert.equal((await tags('dave', 'new-pw')).statusCode, 200);

    await writeFile(rulesFile, stringify({ ...rules, rules: [...rules.rules.slice(1)] }));
    await test.reloadFiles();
    assert.equal((await tags('dave', 'new-pw')).statusCode, 403);
    await writeFile(rulesFile, 'rules: [ {repositories: 42} ]');
    await test.reloadFiles();
    const refused = test.logs.filter((line) => line['level'] === 50 && String(line['msg']).startsWith(`${rulesFile} changed but cannot be used`));
    assert.equal(refused.length, 1, 'the broken rules file is refused, with one error line');
    assert.equal((await tags('dave', 'new-pw')).statusCode, 403, 'a broken rules file leaves the previous rules in force');
    await writeFile(rulesFile, stringify(rules));
    await test.reloadFiles();
    assert.equal((await tags('dave', 'new-pw')).statusCode, 200);
  });
});

describe('guessing passwords', () => {
  it('answers 429 once a client failed too often, while right passwords of others still work', async () => {
    const temp = await tempDir('berth-guess');
    const test = await createTestApp(
      await authSettings(temp.path, { users: { alice: 'pw', bob: 'bob-pw' }, extra: { 'auth.failedSignIns.limit': 3, 'auth.failedSignIns.per': '1h' } }),
    );
    try {
      const ping = (authorization: string, ip = '10.0.0.1') => test.app.inject({ method: 'GET', url: '/v2/', remoteAddress: ip, headers: { authorization } });
      assert.equal((await ping(basic('bob', 'bob-pw'))).statusCode, 200, 'cached from now on');
      for (let attempt = 0; attempt < 3; attempt += 1) assert.equal((await ping(basic('alice', `guess${attempt}`))).statusCode, 401);
      const blocked = await ping(basic('alice', 'pw'));
      assert.equal(blocked.statusCode, 429);
      assert.equal(errorCode(blocked), 'TOOMANYREQUESTS');
      assert.match(JSON.parse(blocked.body).errors[0].message, /too many failed sign-ins from 10\.0\.0\.1/);
      assert.ok(Number(blocked.headers['retry-after']) > 0);
      assert.equal((await ping(basic('bob', 'bob-pw'))).statusCode, 200, 'verified credentials need no bcrypt and pass');
      assert.equal((await ping(basic('alice', 'pw'), '10.0.0.2')).statusCode, 200, 'other clients are not affected');
      const token = await test.app.inject({ method: 'GET', url: '/token?service=berth', remoteAddress: '10.0.0.1', headers: { authorization: basic('alice', 'another-guess') } });
      assert.equal(token.statusCode, 429, 'the token endpoint counts the same failures');
    } finally {
      await test.close();
      await temp.remove();
    }
  });
});

describe('token realm', () => {
  it('names the token endpoint as the client reached it, through a trusted proxy, or as configured', async () => {
    const temp = await tempDir('berth-realm');
    const proxied = await createTestApp(await authSettings(join(temp.path, 'a'), { users: { alice: 'pw' }, extra: { 'auth.challenge': 'token', 'limits.trustProxy': true } }));
    const fixed = await createTestApp(
      await authSettings(join(temp.path, 'b'), {
        users: { alice: 'pw' },
        extra: { 'auth.challenge': 'token', 'auth.token.realm': 'https://auth.example/token', 'auth.token.service': 'reg' },
      }),
    );
    try {
      const headers = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example' };
      const viaProxy = await proxied.app.inject({ method: 'GET', url: '/v2/', headers });
      assert.equal(viaProxy.headers['www-authenticate'], 'Bearer realm="https://registry.example/token",service="berth"');
      const configured = await fixed.app.inject({ method: 'GET', url: '/v2/a/tags/list', headers });
      assert.equal(configured.headers['www-authenticate'], 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a:pull"');
    } finally {
      await proxied.close();
      await fixed.close();
      await temp.remove();
    }
  });
});

describe('Basic challenge and default rules', () => {
  it('asks for Basic credentials, lets users push and anyone pull with auth.anonymousPull', async () => {
    const temp = await tempDir('berth-basic');
    const test = await createTestApp(await authSettings(temp.path, { users: { alice: 'pw' }, extra: { 'auth.anonymousPull': true, 'auth.realm': 'Our "registry"' } }));
    try {
      const ping = await test.app.inject({ method: 'GET', url: '/v2/' });
      assert.equal(ping.statusCode, 401, 'docker login relies on /v2/ asking for credentials');
      assert.equal(
        ping.headers['www-authenticate'],
        'Bearer realm="http://localhost:80/token",service="berth"',
        'docker, told Basic here without a password, refuses to pull anonymously; told Bearer, it fetches an anonymous token',
      );
      const anonymousToken = (await test.app.inject({ method: 'GET', url: '/token?service=berth' })).json<{ token: string }>().token;
      const withToken = await test.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: `Bearer ${anonymousToken}` } });
      assert.equal(withToken.statusCode, 401, 'an anonymous token is not a sign-in: 200 here would tell clients they are logged in');
      const signedIn = await test.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: basic('alice', 'pw') } });
      assert.equal(signedIn.statusCode, 200);
      await injectPushImage(test.app, basic('alice', 'pw'), 'any/name', 'v1', randomImage({ layers: 1 }));
      const pulled = await test.app.inject({ method: 'GET', url: '/v2/any/name/manifests/v1' });
      assert.equal(pulled.statusCode, 200);
      const emptyCredentials = await test.app.inject({ method: 'GET', url: '/v2/any/name/manifests/v1', headers: { authorization: basic('', '') } });
      assert.equal(emptyCredentials.statusCode, 200, 'containers/image sends an empty user and password when it has none');
      const pushed = await test.app.inject({ method: 'POST', url: '/v2/any/name/blobs/uploads/' });
      assert.equal(pushed.statusCode, 401);
      assert.equal(pushed.headers['www-authenticate'], 'Basic realm="Our \\"registry\\"", charset="UTF-8"');
      const other = await test.app.inject({ method: 'GET', url: '/v2/', headers: { authorization: 'Digest username="alice"' } });
      assert.equal(other.statusCode, 401);
      assert.match(JSON.parse(other.body).errors[0].message, /unsupported authorization scheme/);
    } finally {
      await test.close();
      await temp.remove();
    }
  });
  it('asks for Basic credentials at /v2/ when nobody may pull anonymously', async () => {
    const temp = await tempDir('berth-basic');
    const test = await createTestApp(await authSettings(temp.path, { users: { alice: 'pw' } }));
    try {
      const ping = await test.app.inject({ method: 'GET', url: '/v2/' });
      assert.equal(ping.statusCode, 401);
      assert.equal(ping.headers['www-authenticate'], 'Basic realm="Berth", charset="UTF-8"');
    } finally {
      await test.close();
      await temp.remove();
    }
  });
});
