import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { basic } from '../helpers/auth.ts';
import { errorCode } from '../helpers/inject.ts';
import { artifactTypes, startUiFixture, users, type UiFixture } from './fixture.ts';

const api = '/berth/api/v1';
const as = {
  anonymous: undefined,
  alice: basic('alice', users.alice),
  bob: basic('bob', users.bob),
  root: basic('root', users.root),
};
type Who = keyof typeof as;

describe('JSON API: the access rules of the registry', () => {
  let fixture: UiFixture;
  before(async () => {
    fixture = await startUiFixture();
  });
  after(() => fixture?.close());

  const call = (who: Who, options: InjectOptions): Promise<LightMyRequestResponse> => {
    const authorization = as[who];
    return fixture.app.inject({ ...options, headers: { ...(options.headers ?? {}), ...(authorization === undefined ? {} : { authorization }) } });
  };
  const names = async (who: Who, query = ''): Promise<string[]> => {
    const response = await call(who, { method: 'GET', url: `${api}/repositories${query}` });
    assert.equal(response.statusCode, 200, response.body);
    return (JSON.parse(response.body) as { repositories: { name: string }[] }).repositories.map((row) => row.name);
  };

  it('lists only what each caller may pull (the catalog rules)', async () => {
    assert.deepEqual(await names('anonymous'), ['public/app']);
    assert.deepEqual(await names('bob'), ['public/app', 'team/api', 'team/tools/builder', 'team/web']);
    assert.deepEqual(await names('alice', '?q=team'), ['team/api', 'team/tools/builder', 'team/web']);
    assert.deepEqual(await names('root'), ['public/app', 'secret/keys', 'team/api', 'team/tools/builder', 'team/web']);
    // Searching for a hidden name finds nothing, as when it does not exist.
    assert.deepEqual(await names('anonymous', '?q=secret'), []);
    assert.deepEqual(await names('alice', '?q=sec&match=prefix'), []);
  });

  it('answers a hidden repository exactly as a missing one', async () => {
    for (const who of ['anonymous', 'alice', 'bob'] as const) {
      for (const name of ['secret/keys', 'secret/nothing-here']) {
        for (const path of ['', '/-/tags', '/-/manifests/latest']) {
          const response = await call(who, { method: 'GET', url: `${api}/repositories/${name}${path}` });
          assert.equal(response.statusCode, 404, `${who} ${name}${path}`);
          assert.equal(errorCode(response), 'NAME_UNKNOWN');
          assert.doesNotMatch(response.body.replace(/secret\/(keys|nothing-here)/g, ''), /keys/);
        }
      }
    }
    assert.equal((await call('root', { method: 'GET', url: `${api}/repositories/secret/keys/-/tags` })).statusCode, 200);
  });

  it('refuses wrong credentials with a challenge, as /v2/ does', async () => {
    const response = await fixture.app.inject({ method: 'GET', url: `${api}/repositories`, headers: { authorization: basic('alice', 'wrong') } });
    assert.equal(response.statusCode, 401);
    assert.equal(errorCode(response), 'UNAUTHORIZED');
    assert.match(String(response.headers['www-authenticate']), /^Basic/);
  });

  it('sorts by size and last push and pages with a cursor', async () => {
    const first = JSON.parse((await call('root', { method: 'GET', url: `${api}/repositories?sort=size&limit=2` })).body) as {
      repositories: { name: string; bytes: number }[];
      next: string;
    };
    assert.equal(first.repositories.length, 2);
    assert.equal(first.repositories[0]?.name, 'public/app');
    assert.ok((first.repositories[0]?.bytes ?? 0) >= (first.repositories[1]?.bytes ?? 0));
    const second = JSON.parse((await call('root', { method: 'GET', url: `${api}/repositories?sort=size&limit=10&after=${encodeURIComponent(first.next)}` })).body) as {
      repositories: { name: string }[];
      next: string | null;
    };
    assert.equal(second.repositories.length, 3);
    assert.equal(second.next, null);
    const all = [...first.repositories, ...second.repositories].map((row) => row.name).sort();
    assert.deepEqual(all, ['public/app', 'secret/keys', 'team/api', 'team/tools/builder', 'team/web']);
    const pushed = await names('root', '?sort=pushed');
    assert.equal(pushed[0], 'secret/keys');
    assert.equal((await call('root', { method: 'GET', url: `${api}/repositories?sort=stars` })).statusCode, 400);
  });

  it('describes tags: digest, type, platforms, immutability and whether the caller may delete', async () => {
    type TagRow = { tag: string; digest: string; kind: string; platforms: string[]; immutable: boolean; deletable: boolean; pushedAt: string | null };
    const tags = async (who: Who, query = '') =>
      (JSON.parse((await call(who, { method: 'GET', url: `${api}/repositories/public/app/-/tags${query}` })).body) as { tags: TagRow[] }).tags;
    const byAlice = await tags('alice');
    assert.deepEqual(
      byAlice.map((row) => row.tag),
      ['1.0', '1.1', 'latest', 'multi'],
    );
    assert.equal(byAlice[0]?.digest, fixture.image.manifest.digest);
    assert.equal(byAlice[0]?.immutable, true);
    assert.equal(byAlice[0]?.deletable, false);
    assert.equal(byAlice[1]?.deletable, true);
    assert.ok(byAlice[1]?.pushedAt !== null);
    assert.deepEqual(byAlice[3]?.platforms, ['linux/amd64', 'linux/arm64']);
    assert.equal(byAlice[3]?.kind, 'index');
    assert.ok((await tags('anonymous')).every((row) => !row.deletable));
    assert.deepEqual(
      (await tags('bob', '?filter=1.')).map((row) => row.tag),
      ['1.0', '1.1'],
    );
  });

  it('records no pull for an image it shows; a registry pull is recorded', async () => {
    const { operations } = fixture.registry.server.registry;
    const pulled = async () => {
      await operations.pulls?.flush();
      return (await operations.store.pulls.lastPulls('public/app' as never)).has(fixture.image.manifest.digest);
    };
    assert.equal((await call('anonymous', { method: 'GET', url: `${api}/repositories/public/app/-/manifests/1.0` })).statusCode, 200);
    assert.equal(await pulled(), false, 'a page view is no pull');
    const pull = await fixture.app.inject({
      method: 'GET',
      url: `/v2/public/app/manifests/${fixture.image.manifest.digest}`,
      headers: { accept: fixture.image.manifest.mediaType },
    });
    assert.equal(pull.statusCode, 200);
    assert.equal(await pulled(), true, 'a registry pull is');
    const tags = JSON.parse((await call('anonymous', { method: 'GET', url: `${api}/repositories/public/app/-/tags?filter=1.0` })).body) as {
      tags: { tag: string; mediaType: string; pulledAt: string | null; size: number }[];
    };
    assert.equal(tags.tags[0]?.tag, '1.0');
    assert.equal(tags.tags[0]?.mediaType, fixture.image.manifest.mediaType);
    assert.ok(tags.tags[0]?.pulledAt !== null && Date.now() - Date.parse(tags.tags[0]?.pulledAt ?? '') < 60_000, 'the tag shows when it was last pulled');
    assert.ok((tags.tags[0]?.size ?? 0) > 8000, 'the size counts config and layers');
  });

  it('shows an image with its config and referrers grouped by artifact type', async () => {
    const response = await call('anonymous', { method: 'GET', url: `${api}/repositories/public/app/-/manifests/1.0` });
    assert.equal(response.statusCode, 200, response.body);
    const image = JSON.parse(response.body) as {
      manifest: { digest: string; layers: unknown[] };
      config: { entrypoint: string[]; user: string; env: string[] };
      referrers: { artifactType: string; referrers: { children: { artifactType: string }[] }[] }[];
    };
    assert.equal(image.manifest.digest, fixture.image.manifest.digest);
    assert.equal(image.manifest.layers.length, 2);
    assert.deepEqual(image.config.entrypoint, ['/bin/app']);
    assert.equal(image.config.user, '1000');
    assert.deepEqual(
      image.referrers.map((group) => group.artifactType),
      [artifactTypes.sbom, artifactTypes.signature].sort(),
    );
    const sbom = image.referrers.find((group) => group.artifactType === artifactTypes.sbom);
    assert.equal(sbom?.referrers[0]?.children[0]?.artifactType, artifactTypes.signature);
  });

  it('deletes a tag only for callers who may, never an immutable one', async () => {
    const remove = (who: Who, tag: string) => call(who, { method: 'DELETE', url: `${api}/repositories/public/app/-/tags/${tag}` });
    let response = await remove('anonymous', '1.1');
    assert.equal(response.statusCode, 403);
    response = await remove('bob', '1.1');
    assert.equal(response.statusCode, 403);
    assert.equal(errorCode(response), 'DENIED');
    response = await remove('alice', '1.0');
    assert.equal(response.statusCode, 403, 'immutable tag');
    response = await remove('alice', 'latest');
    assert.equal(response.statusCode, 200, response.body);
    assert.equal((await fixture.app.inject({ method: 'GET', url: '/v2/public/app/manifests/latest' })).statusCode, 404);
  });

  it('refuses a cookie-authenticated delete without the CSRF token or from another origin', async () => {
    const signIn = await fixture.app.inject({
      method: 'POST',
      url: '/ui/sign-in',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ user: 'alice', password: users.alice, next: '/ui/' }).toString(),
    });
    assert.equal(signIn.statusCode, 303);
    const setCookie = String(signIn.headers['set-cookie']);
    assert.match(setCookie, /berth_session=[^;]+; Path=\/; HttpOnly; SameSite=Lax/);
    const cookie = setCookie.split(';')[0] as string;
    const session = JSON.parse((await fixture.app.inject({ method: 'GET', url: `${api}/session`, headers: { cookie } })).body) as { user: string; csrf: string };
    assert.equal(session.user, 'alice');
    const remove = (headers: Record<string, string>) => fixture.app.inject({ method: 'DELETE', url: `${api}/repositories/team/web/-/tags/v2`, headers: { cookie, ...headers } });
    assert.equal((await remove({})).statusCode, 403);
    assert.equal((await remove({ 'x-berth-csrf': 'forged' })).statusCode, 403);
    assert.equal((await remove({ 'x-berth-csrf': session.csrf, origin: 'https://evil.example' })).statusCode, 403);
    assert.equal((await remove({ 'x-berth-csrf': session.csrf })).statusCode, 200);
  });

  it('shows operations to administrators only', async () => {
    for (const who of ['anonymous', 'alice'] as const) assert.equal((await call(who, { method: 'GET', url: `${api}/operations` })).statusCode, 403);
    const response = await call('root', { method: 'GET', url: `${api}/operations?preview=retention` });
    assert.equal(response.statusCode, 200, response.body);
    const view = JSON.parse(response.body) as { quotas: { name: string; usedBytes: number }[]; largest: { name: string }[]; retention: { preview: { tags: { tag: string }[] } } };
    assert.equal(view.quotas[0]?.name, 'team');
    assert.ok((view.quotas[0]?.usedBytes ?? 0) > 0);
    assert.equal(view.largest[0]?.name, 'public/app');
    assert.ok(Array.isArray(view.retention.preview.tags));
  });

  it('shows the last garbage collection pass and what it freed, when the next starts, and recent pushes and deletes', async () => {
    const { registry } = fixture.registry.server;
    const removed = await fixture.app.inject({ method: 'DELETE', url: '/v2/team/api/manifests/latest', headers: { authorization: as.root } });
    assert.equal(removed.statusCode, 202);
    const report = await registry.operations.collect();
    assert.ok(report !== undefined);
    const response = await call('root', { method: 'GET', url: `${api}/operations` });
    assert.equal(response.statusCode, 200, response.body);
    const view = JSON.parse(response.body) as {
      gc: { last?: { finishedAt: string; bytesFreed: number; blobsDeleted: number; manifestsDeleted: number }; next?: string; interval: number };
      events: { action: string; repository?: string; reference?: string }[];
    };
    assert.ok(view.gc.last !== undefined && Date.now() - Date.parse(view.gc.last.finishedAt) < 60_000, JSON.stringify(view.gc));
    assert.equal(view.gc.last.bytesFreed, report.bytesFreed);
    assert.equal(view.gc.last.manifestsDeleted, report.manifestsDeleted);
    assert.equal(view.gc.last.blobsDeleted, report.blobsDeleted);
    assert.ok(view.gc.next !== undefined && Date.parse(view.gc.next) > Date.now(), 'the next scheduled pass');
    assert.deepEqual(
      view.events.find((event) => event.action === 'delete'),
      { ...view.events.find((event) => event.action === 'delete'), repository: 'team/api', reference: 'latest' },
    );
    assert.ok(view.events.some((event) => event.action === 'push' && event.repository === 'secret/keys'));
    const page = await fixture.app.inject({ method: 'GET', url: '/ui/operations', headers: { authorization: as.root } });
    assert.match(page.body, /<dt>Last pass<\/dt><dd><time/);
    assert.match(page.body, /<dt>Freed<\/dt><dd>[^<]+: \d+ blobs, \d+ manifests/);
  });
});

describe('web UI switched off', () => {
  it('serves neither pages nor the API, and / stays a 404', async () => {
    const { startTestRegistry } = await import('../helpers/registry.ts');
    const registry = await startTestRegistry({ 'ui.enabled': false });
    try {
      for (const path of ['/ui/', `${api}/repositories`]) assert.equal((await fetch(`${registry.url}${path}`)).status, 404, path);
      assert.equal((await fetch(`${registry.url}/`, { headers: { accept: 'text/html' }, redirect: 'manual' })).status, 404);
    } finally {
      await registry.close();
    }
  });

  it('leads browsers from / to the UI when on, and leaves other clients their 404', async () => {
    const { startTestRegistry } = await import('../helpers/registry.ts');
    const registry = await startTestRegistry();
    try {
      const browser = await fetch(`${registry.url}/`, { headers: { accept: 'text/html,application/xhtml+xml' }, redirect: 'manual' });
      assert.equal(browser.status, 302);
      assert.equal(browser.headers.get('location'), '/ui/');
      assert.equal((await fetch(`${registry.url}/`, { headers: { accept: 'application/json' } })).status, 404);
      const page = await fetch(`${registry.url}/ui/`);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      assert.match(await page.text(), /No repositories yet/);
    } finally {
      await registry.close();
    }
  });
});
