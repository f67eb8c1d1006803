import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, exportJWK, jwtVerify, SignJWT, UnsecuredJWT, type JSONWebKeySet } from 'jose';
import { TokenService } from '../../src/auth/tokens.ts';
import { loadConfig } from '../../src/config/load.ts';
import { authSettings, basic, writeUsers } from '../helpers/auth.ts';
import { randomImage } from '../helpers/images.ts';
import { errorCode, injectPushImage } from '../helpers/inject.ts';
import { createTestApp, type TestApp } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

/** carol is the refresh-token test's own: it changes her password, and no other test signs in as her. */
const users = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' };
const rules = {
  rules: [
    { repositories: 'team/**', grants: { alice: ['pull' as const, 'push' as const, 'delete' as const], bob: ['pull' as const], carol: ['pull' as const, 'push' as const] } },
    { repositories: 'public/**', anonymous: ['pull' as const], grants: { alice: ['pull' as const, 'push' as const] } },
  ],
};

interface TokenBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}

function sign(key: KeyObject, claims: { iss?: string; aud?: string; sub?: string; exp?: number; access?: unknown }, alg = 'ES256'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ access: claims.access ?? [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
    .setProtectedHeader({ alg, typ: 'JWT', kid: 'k1' })
    .setIssuer(claims.iss ?? 'berth')
    .setAudience(claims.aud ?? 'berth')
    .setSubject(claims.sub ?? 'alice')
    .setIssuedAt(now)
    .setExpirationTime(claims.exp ?? now + 300)
    .sign(key);
}

describe('token endpoint and Bearer tokens', () => {
  let temp: { path: string; remove(): Promise<void> };
  let test: TestApp;
  let jwksServer: Server;
  const external = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const externalByFile = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  before(async () => {
    temp = await tempDir('berth-tokens');
    const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(external.publicKey)), kid: 'k1', alg: 'ES256' }] };
    jwksServer = createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks)));
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const address = jwksServer.address() as { port: number };
    const publicKeyFile = join(temp.path, 'issuer.pem');
    await writeFile(publicKeyFile, externalByFile.publicKey.export({ type: 'spki', format: 'pem' }));
    test = await createTestApp(
      await authSettings(temp.path, {
        users,
        rules,
        extra: {
          'auth.challenge': 'token',
          'auth.token.trusted': [
            { issuer: 'https://sso.example', jwks: `http://127.0.0.1:${address.port}/jwks.json` },
            { issuer: 'ci', publicKey: publicKeyFile, audience: 'registry.example' },
          ],
        },
      }),
    );
    await injectPushImage(test.app, basic('alice', users.alice), 'team/app', 'v1', randomImage({ layers: 1 }));
  });
  after(async () => {
    await test.close();
    await new Promise((resolve) => jwksServer.close(resolve));
    await temp.remove();
  });

  const getToken = async (query: string, authorization?: string) => {
    const response = await test.app.inject({ method: 'GET', url: `/token?${query}`, headers: authorization === undefined ? {} : { authorization } });
    return {
      status: response.statusCode,
      body: response.body,
      headers: response.headers,
      token: response.statusCode === 200 ? (JSON.parse(response.body) as TokenBody) : undefined,
    };
  };
  const postToken = (form: Record<string, string>, contentType = 'application/x-www-form-urlencoded') =>
    test.app.inject({ method: 'POST', url: '/token', headers: { 'content-type': contentType }, payload: new URLSearchParams(form).toString() });
  const tags = (authorization: string) => test.app.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: { authorization } });

  it('grants the intersection of what is asked and what is allowed, never an error for lacking access', async () => {
    const scope = 'scope=repository:team/app:pull,push,delete&scope=repository:public/x:*&scope=registry:catalog:*&scope=bogus';
    const alice = await getToken(`service=berth&${scope}`, basic('alice', users.alice));
    assert.equal(alice.status, 200);
    assert.equal(alice.token?.token, alice.token?.access_token);
    assert.equal(alice.token?.expires_in, 300);
    assert.ok(Number.isFinite(Date.parse(alice.token?.issued_at ?? '')));
    assert.equal(alice.headers['cache-control'], 'no-store');
    const claims = decodeJwt(alice.token?.token ?? '');
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.aud, 'berth');
    assert.equal(claims.iss, 'berth');
    assert.deepEqual(claims['access'], [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] },
      { type: 'repository', name: 'public/x', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    const bob = decodeJwt((await getToken(`service=berth&${scope}`, basic('bob', users.bob))).token?.token ?? '');
    assert.deepEqual(bob['access'], [
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      { type: 'repository', name: 'public/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
    const anonymous = decodeJwt((await getToken(`service=berth&${scope}`)).token?.token ?? '');
    assert.equal(anonymous.sub, '');
    assert.deepEqual(anonymous['access'], [
      { type: 'repository', name: 'public/x', actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('lists in the catalog what the token user may pull, given registry:catalog:*', async () => {
    await injectPushImage(test.app, basic('alice', users.alice), 'public/x', 'v1', randomImage({ layers: 1 }));
    const list = async (authorization: string) => {
      const response = await test.app.inject({ method: 'GET', url: '/v2/_catalog', headers: { authorization } });
      assert.equal(response.statusCode, 200, response.body);
      return (JSON.parse(response.body) as { repositories: string[] }).repositories;
    };
    const alice = (await getToken('service=berth&scope=registry:catalog:*', basic('alice', users.alice))).token?.token;
    assert.deepEqual(await list(`Bearer ${alice}`), ['public/x', 'team/app']);
    const anonymous = (await getToken('service=berth&scope=registry:catalog:*')).token?.token;
    assert.deepEqual(await list(`Bearer ${anonymous}`), ['public/x']);
  });

  it('refuses wrong passwords with a Basic challenge, and another service', async () => {
    const wrong = await getToken('service=berth&scope=repository:team/app:pull', basic('alice', 'nope'));
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['www-authenticate'], 'Basic realm="Berth", charset="UTF-8"');
    assert.equal((await getToken('service=berth', 'Basic !!!')).status, 401);
    const service = await getToken('service=elsewhere', basic('alice', users.alice));
    assert.equal(service.status, 400);
    assert.match(JSON.parse(service.body).errors[0].message, /serves "berth"/);
  });

  it('issues refresh tokens (docker login) and honours them on POST until the password changes', async () => {
    const login = await getToken('service=berth&offline_token=true&client_id=docker&account=carol', basic('carol', users.carol));
    const refresh = login.token?.refresh_token;
    assert.ok(refresh !== undefined);
    assert.equal((await getToken('service=berth&offline_token=true')).token?.refresh_token, undefined, 'anonymous clients get none');
    const refreshed = await postToken({ grant_type: 'refresh_token', refresh_token: refresh, service: 'berth', client_id: 'containerd', scope: 'repository:team/app:pull,push' });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    const body = JSON.parse(refreshed.body) as TokenBody;
    assert.equal(body.scope, 'repository:team/app:pull,push');
    assert.equal(body.refresh_token, refresh);
    assert.equal((await tags(`Bearer ${body.access_token}`)).statusCode, 200);
    assert.equal((await tags(`Bearer ${refresh}`)).statusCode, 401, 'a refresh token is no access token');

    await writeUsers(join(temp.path, 'htpasswd'), { ...users, carol: 'changed' });
    await test.reloadFiles();
    const revoked = await postToken({ grant_type: 'refresh_token', refresh_token: refresh, service: 'berth' });
    assert.equal(revoked.statusCode, 401, 'a new password revokes refresh tokens');
  });

  it('takes the OAuth2 password grant and refuses other grants and bodies', async () => {
    const ok = await postToken({
      grant_type: 'password',
      username: 'bob',
      password: users.bob,
      service: 'berth',
      scope: 'repository:team/app:pull repository:team/app:push',
      access_type: 'offline',
    });
    assert.equal(ok.statusCode, 200, ok.body);
    const body = JSON.parse(ok.body) as TokenBody;
    assert.equal(body.scope, 'repository:team/app:pull');
    assert.ok(body.refresh_token !== undefined);
    assert.equal((await postToken({ grant_type: 'password', username: 'bob', password: 'x' })).statusCode, 401);
    const grant = await postToken({ grant_type: 'client_credentials' });
    assert.equal(grant.statusCode, 400);
    assert.equal(errorCode(grant), 'UNSUPPORTED');
    assert.equal((await postToken({ grant_type: 'password' }, 'application/json')).statusCode, 400);
    const huge = await postToken({ grant_type: 'password', username: 'bob', password: 'x'.repeat(20_000) });
    assert.equal(huge.statusCode, 413);
  });

  it('publishes its public key, which verifies its tokens', async () => {
    const jwks = JSON.parse((await test.app.inject({ method: 'GET', url: '/token/jwks.json' })).body) as JSONWebKeySet;
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]?.d, undefined, 'no private part');
    const token = (await getToken('service=berth&scope=repository:public/x:pull')).token?.token ?? '';
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), { issuer: 'berth', audience: 'berth' });
    assert.equal(payload.sub, '');
  });

  const badTokens: { name: string; token: () => Promise<string>; message: RegExp }[] = [
    { name: 'a wrong signature', token: () => sign(stranger.privateKey, {}), message: /signature/ },
    { name: 'a wrong audience', token: () => sign(external.privateKey, { iss: 'https://sso.example', aud: 'other' }), message: /aud/ },
    {
      name: 'alg none',
      token: async () =>
        new UnsecuredJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull'] }] })
          .setIssuer('berth')
          .setAudience('berth')
          .setSubject('alice')
          .setExpirationTime('5m')
          .encode(),
      message: /algorithm|invalid/,
    },
    { name: 'an expired token', token: () => sign(external.privateKey, { iss: 'https://sso.example', exp: Math.floor(Date.now() / 1000) - 120 }), message: /expired/ },
    { name: 'an unknown issuer', token: () => sign(stranger.privateKey, { iss: 'https://evil.example' }), message: /issuer/ },
    { name: 'a token that is no JWT', token: async () => 'not.a.jwt', message: /JWT/ },
  ];
  for (const bad of badTokens) {
    it(`refuses ${bad.name} with 401 invalid_token`, async () => {
      const response = await tags(`Bearer ${await bad.token()}`);
      assert.equal(response.statusCode, 401);
      assert.equal(errorCode(response), 'UNAUTHORIZED');
      assert.match(JSON.parse(response.body).errors[0].message, bad.message);
      assert.match(String(response.headers['www-authenticate']), /^Bearer realm=".*",service="berth",scope="repository:team\/app:pull",error="invalid_token"$/);
    });
  }

  it('accepts tokens of trusted issuers, by remote JWKS and by public key file, for what they grant', async () => {
    const sso = await sign(external.privateKey, { iss: 'https://sso.example', sub: 'someone' });
    assert.equal((await tags(`Bearer ${sso}`)).statusCode, 200);
    const push = await test.app.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/', headers: { authorization: `Bearer ${sso}` } });
    assert.equal(push.statusCode, 401, 'an external token without push gets a challenge for it');
    assert.match(String(push.headers['www-authenticate']), /error="insufficient_scope"/);
    const ci = await sign(
      externalByFile.privateKey,
      { iss: 'ci', aud: 'registry.example', access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }] },
      'ES384',
    );
    const started = await test.app.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/', headers: { authorization: `Bearer ${ci}` } });
    assert.equal(started.statusCode, 202);
    const ciWrongAudience = await sign(externalByFile.privateKey, { iss: 'ci', aud: 'berth' }, 'ES384');
    assert.equal((await tags(`Bearer ${ciWrongAudience}`)).statusCode, 401);
  });
});

describe('verified tokens remembered', () => {
  it('answers a token it verified from memory, and never past the token’s own expiry', async (context) => {
    const temp = await tempDir('berth-token-cache');
    try {
      const settings = { ...(await loadConfig({ env: {}, overrides: { dataDir: temp.path } })).auth.token, ttl: 60_000 };
      const service = await TokenService.open(settings, join(temp.path, 'key.pem'));
      context.mock.timers.enable({ apis: ['Date'], now: Date.now() });
      const { token } = await service.issueAccessToken('alice', [{ type: 'repository', name: 'team/app', actions: ['pull'] }]);
      const first = await service.verifyAccessToken(token);
      assert.equal(await service.verifyAccessToken(token), first, 'the second request is answered from memory');
      // 60 s token, 30 s clock tolerance: still good 61 s on (checked again), refused 95 s on.
      context.mock.timers.tick(61_000);
      assert.equal((await service.verifyAccessToken(token)).subject, 'alice');
      context.mock.timers.tick(34_000);
      await assert.rejects(service.verifyAccessToken(token), /expired/);
    } finally {
      await temp.remove();
    }
  });
});
