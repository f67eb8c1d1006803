import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { InjectOptions } from 'fastify';
import { SignJWT } from 'jose';
import type * as z from 'zod/mini';
import type { accessRulesConfig } from '../../src/config/auth.ts';
import { digestOf } from '../../src/oci/digest.ts';
import { authSettings, basic } from '../helpers/auth.ts';
import { randomImage } from '../helpers/images.ts';
import { errorCode, injectPushImage } from '../helpers/inject.ts';
import { createTestApp, type TestApp } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

const users = { reader: 'r-pass', writer: 'w-pass', writer2: 'w2-pass', root: 'root-pass' };
const rules = {
  admins: ['root'],
  groups: { devs: ['writer', 'writer2'] },
  rules: [
    { repositories: 'team/**', grants: { reader: ['pull'], '@devs': ['pull', 'push', 'delete'] } },
    { repositories: 'public/**', anonymous: ['pull'], grants: { '@devs': ['pull', 'push'] } },
  ],
} satisfies z.input<typeof accessRulesConfig>;

type Action = 'pull' | 'push' | 'delete' | 'signed-in' | 'catalog';

/** What a case works on: a real repository with content, or names that exist nowhere. */
interface Target {
  repo: string;
  tag: string;
  manifest: string;
  blob: string;
  upload: string;
  chunk: Buffer;
  manifestBytes: Buffer;
  manifestType: string;
}

interface Endpoint {
  name: string;
  action: Action;
  ok: number;
  /** The error code when the request is allowed but still fails (droplet uploads into a hosted repository). */
  okCode?: string;
  request(target: Target): InjectOptions;
}

const endpoints: Endpoint[] = [
  { name: 'GET /v2/', action: 'signed-in', ok: 200, request: () => ({ method: 'GET', url: '/v2/' }) },
  { name: 'GET /v2/_catalog', action: 'catalog', ok: 200, request: () => ({ method: 'GET', url: '/v2/_catalog' }) },
  { name: 'GET tags/list', action: 'pull', ok: 200, request: (t) => ({ method: 'GET', url: `/v2/${t.repo}/tags/list` }) },
  { name: 'GET manifest', action: 'pull', ok: 200, request: (t) => ({ method: 'GET', url: `/v2/${t.repo}/manifests/${t.tag}` }) },
  { name: 'HEAD manifest', action: 'pull', ok: 200, request: (t) => ({ method: 'HEAD', url: `/v2/${t.repo}/manifests/${t.manifest}` }) },
  {
    name: 'PUT manifest',
    action: 'push',
    ok: 201,
    request: (t) => ({ method: 'PUT', url: `/v2/${t.repo}/manifests/${t.tag}-copy`, headers: { 'content-type': t.manifestType }, payload: t.manifestBytes }),
  },
  { name: 'DELETE manifest', action: 'delete', ok: 202, request: (t) => ({ method: 'DELETE', url: `/v2/${t.repo}/manifests/${t.manifest}` }) },
  { name: 'POST blobs/uploads', action: 'push', ok: 202, request: (t) => ({ method: 'POST', url: `/v2/${t.repo}/blobs/uploads/` }) },
  {
    name: 'POST blobs/ (droplet)',
    action: 'push',
    ok: 405,
    okCode: 'UNSUPPORTED',
    request: (t) => ({ method: 'POST', url: `/v2/${t.repo}/blobs/?guid=g1`, headers: { 'content-type': 'application/gzip' }, payload: t.chunk }),
  },
  { name: 'GET blobs/uploads/<id>', action: 'push', ok: 204, request: (t) => ({ method: 'GET', url: `/v2/${t.repo}/blobs/uploads/${t.upload}` }) },
  {
    name: 'PATCH blobs/uploads/<id>',
    action: 'push',
    ok: 202,
    request: (t) => ({ method: 'PATCH', url: `/v2/${t.repo}/blobs/uploads/${t.upload}`, headers: { 'content-type': 'application/octet-stream' }, payload: t.chunk }),
  },
  {
    name: 'PUT blobs/uploads/<id>',
    action: 'push',
    ok: 201,
    request: (t) => ({
      method: 'PUT',
      url: `/v2/${t.repo}/blobs/uploads/${t.upload}?digest=${digestOf(t.chunk)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: t.chunk,
    }),
  },
  { name: 'DELETE blobs/uploads/<id>', action: 'push', ok: 204, request: (t) => ({ method: 'DELETE', url: `/v2/${t.repo}/blobs/uploads/${t.upload}` }) },
  { name: 'GET blob', action: 'pull', ok: 200, request: (t) => ({ method: 'GET', url: `/v2/${t.repo}/blobs/${t.blob}` }) },
  { name: 'HEAD blob', action: 'pull', ok: 200, request: (t) => ({ method: 'HEAD', url: `/v2/${t.repo}/blobs/${t.blob}` }) },
  { name: 'DELETE blob', action: 'delete', ok: 202, request: (t) => ({ method: 'DELETE', url: `/v2/${t.repo}/blobs/${t.blob}` }) },
  { name: 'GET referrers', action: 'pull', ok: 200, request: (t) => ({ method: 'GET', url: `/v2/${t.repo}/referrers/${t.manifest}` }) },
];

/** Each caller: what it may do on team/app, and how it is refused otherwise. */
interface CallerCase {
  name: string;
  allowed: ReadonlySet<Action>;
  refusal: { status: number; code: string };
  /** Tokens lacking the catalog scope get a challenge for it, whoever holds them. */
  catalogRefusal?: { status: number; code: string };
}

const everything: ReadonlySet<Action> = new Set(['pull', 'push', 'delete', 'signed-in', 'catalog']);
const unauthorized = { status: 401, code: 'UNAUTHORIZED' };
const denied = { status: 403, code: 'DENIED' };

const callers: CallerCase[] = [
  { name: 'anonymous', allowed: new Set(['catalog']), refusal: unauthorized },
  { name: 'reader', allowed: new Set(['pull', 'signed-in', 'catalog']), refusal: denied },
  { name: 'writer', allowed: everything, refusal: denied },
  { name: 'admin', allowed: everything, refusal: denied },
  { name: 'wrong password', allowed: new Set(), refusal: unauthorized },
  { name: 'expired token', allowed: new Set(), refusal: unauthorized },
  // The writer could get this scope, so the answer is a fresh challenge, not a denial.
  { name: 'token for another repository', allowed: new Set(['signed-in']), refusal: unauthorized },
  { name: 'reader token', allowed: new Set(['pull', 'signed-in']), refusal: denied, catalogRefusal: unauthorized },
  { name: 'writer token', allowed: new Set(['pull', 'push', 'delete', 'signed-in']), refusal: denied, catalogRefusal: unauthorized },
];

describe('access matrix: every endpoint × every kind of caller', () => {
  let temp: { path: string; remove(): Promise<void> };
  let test: TestApp;
  const authorization = new Map<string, string | undefined>();

  const token = async (credentials: string, scope: string): Promise<string> => {
    const response = await test.app.inject({ method: 'GET', url: `/token?service=berth&scope=${encodeURIComponent(scope)}`, headers: { authorization: credentials } });
    assert.equal(response.statusCode, 200, response.body);
    return `Bearer ${(JSON.parse(response.body) as { token: string }).token}`;
  };

  before(async () => {
    temp = await tempDir('berth-matrix');
    // A droplet repository elsewhere registers the droplet upload endpoint, whose access is checked like the core ones.
    const extra = { 'auth.challenge': 'token', 'auth.failedSignIns.limit': 0, repositories: [{ prefix: 'cf/', kind: 'droplet' }] };
    test = await createTestApp(await authSettings(temp.path, { users, rules, extra }));
    const key = createPrivateKey(await readFile(join(test.registry.config.dataDir, 'auth', 'token-signing-key.pem'), 'utf8'));
    const now = Math.floor(Date.now() / 1000);
    const expired = await new SignJWT({ access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }] })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer('berth')
      .setSubject('writer')
      .setAudience('berth')
      .setIssuedAt(now - 3600)
      .setExpirationTime(now - 600)
      .sign(key);
    authorization.set('anonymous', undefined);
    authorization.set('reader', basic('reader', users.reader));
    authorization.set('writer', basic('writer', users.writer));
    authorization.set('admin', basic('root', users.root));
    authorization.set('wrong password', basic('writer', 'not-the-password'));
    authorization.set('expired token', `Bearer ${expired}`);
    authorization.set('token for another repository', await token(basic('writer', users.writer), 'repository:team/other:pull,push,delete'));
    authorization.set('reader token', await token(basic('reader', users.reader), 'repository:team/app:pull,push,delete'));
    authorization.set('writer token', await token(basic('writer', users.writer), 'repository:team/app:pull,push,delete'));
  });
  after(async () => {
    await test.close();
    await temp.remove();
  });

  /** A fresh image in team/app, and an upload started by whoever will use it. */
  const realTarget = async (uploader: string): Promise<Target> => {
    const image = randomImage({ layers: 1 });
    const tag = `t${randomBytes(4).toString('hex')}`;
    await injectPushImage(test.app, basic('root', users.root), 'team/app', tag, image);
    const started = await test.app.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/', headers: { authorization: uploader } });
    assert.equal(started.statusCode, 202, started.body);
    return {
      repo: 'team/app',
      tag,
      manifest: image.manifest.digest,
      blob: image.layers[0]?.digest as string,
      upload: started.headers['docker-upload-uuid'] as string,
      chunk: randomBytes(64),
      manifestBytes: image.manifest.bytes,
      manifestType: image.manifest.mediaType,
    };
  };
  const ghostTarget = (): Target => ({
    repo: 'team/ghost',
    tag: 'nothing',
    manifest: digestOf(randomBytes(8)),
    blob: digestOf(randomBytes(8)),
    upload: randomUUID(),
    chunk: randomBytes(64),
    manifestBytes: Buffer.from('{}'),
    manifestType: 'application/vnd.oci.image.manifest.v1+json',
  });

  for (const caller of callers) {
    for (const endpoint of endpoints) {
      const allowed = caller.allowed.has(endpoint.action);
      const refusal = endpoint.action === 'catalog' ? (caller.catalogRefusal ?? caller.refusal) : caller.refusal;
      const expected = allowed ? { status: endpoint.ok, code: endpoint.okCode } : refusal;
      it(`${caller.name} × ${endpoint.name} → ${expected.status}${expected.code === undefined ? '' : ` ${expected.code}`}`, async () => {
        const credentials = authorization.get(caller.name);
        const uploader = allowed && endpoint.action === 'push' && credentials !== undefined ? credentials : basic('writer', users.writer);
        const send = (target: Target) => {
          const options = endpoint.request(target);
          return test.app.inject({ ...options, headers: { ...options.headers, ...(credentials === undefined ? {} : { authorization: credentials }) } });
        };
        const response = await send(await realTarget(uploader));
        assert.equal(response.statusCode, expected.status, response.body);
        assert.equal(errorCode(response), endpoint.request(ghostTarget()).method === 'HEAD' ? undefined : expected.code);
        const challenge = response.headers['www-authenticate'];
        if (expected.status === 401) assert.match(String(challenge), /^Bearer realm="http:\/\/localhost(:80)?\/token",service="berth"/);
        else assert.equal(challenge, undefined);
        if (expected.status === 401 && endpoint.action !== 'signed-in') {
          assert.match(String(challenge), endpoint.action === 'catalog' ? /scope="registry:catalog:\*"/ : /scope="repository:team\/app:/);
        }
        if (!allowed && endpoint.action !== 'signed-in' && endpoint.action !== 'catalog') {
          // Refused the same way whether or not the repository, manifest, blob or upload exists.
          const ghost = await send(ghostTarget());
          assert.equal(ghost.statusCode, response.statusCode);
          assert.equal(errorCode(ghost), errorCode(response));
          assert.equal(ghost.body.replaceAll('team/ghost', 'team/app'), response.body);
        }
      });
    }
  }
});
