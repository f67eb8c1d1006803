import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeOciArchive } from '../sources/archive/fixtures.ts';
import { buildDroplet, writeRootfs } from '../sources/droplet/fixtures.ts';
import { rootAuth, startUiFixture, users, type UiFixture } from './fixture.ts';

/** The session cookie (name=value) of a form sign-in, and the whole Set-Cookie header. */
async function signIn(base: string, user: keyof typeof users): Promise<{ cookie: string; setCookie: string }> {
  const response = await fetch(`${base}/ui/sign-in`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ user, password: users[user], next: '/ui/' }),
  });
  assert.equal(response.status, 303);
  const setCookie = response.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0] as string, setCookie };
}

/** The CSRF token a page's forms carry. */
function csrfOf(page: string): string {
  const token = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(token !== undefined && token.length > 0, 'the page carries a CSRF token');
  return token;
}

describe('web UI forms: deletes and sign-out need the CSRF token and the same origin', () => {
  let fixture: UiFixture;
  let base: string;
  before(async () => {
    fixture = await startUiFixture();
    base = fixture.registry.url;
  });
  after(() => fixture?.close());

  const post = (path: string, cookie: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(form),
    });
  const tagExists = async (tag: string) =>
    (await fixture.app.inject({ method: 'GET', url: `/v2/team/web/manifests/${tag}`, headers: { authorization: rootAuth, accept: mediaTypes.ociManifest } })).statusCode === 200;

  it('the confirmation page (no script) deletes only with the token, from this origin', async () => {
    const { cookie, setCookie } = await signIn(base, 'alice');
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Lax/);
    assert.doesNotMatch(setCookie, /Secure/, 'plain HTTP: a Secure cookie would never come back');
    const confirm = await fetch(`${base}/ui/r/team/web/-/tags/v2/delete`, { headers: { cookie } });
    assert.equal(confirm.status, 200);
    const csrf = csrfOf(await confirm.text());
    const path = '/ui/r/team/web/-/tags/v2/delete';

    for (const [what, form, headers] of [
      ['no token', {}, {}],
      ['a forged token', { csrf: 'x'.repeat(csrf.length) }, {}],
      ['another site', { csrf }, { origin: 'https://evil.example' }],
    ] as const) {
      const refused = await post(path, cookie, form, headers);
      assert.equal(refused.status, 403, what);
      assert.match(await refused.text(), /Not allowed/);
      assert.equal(await tagExists('v2'), true, `${what}: the tag stays`);
    }
    const done = await post(path, cookie, { csrf }, { origin: base });
    assert.equal(done.status, 303);
    assert.equal(done.headers.get('location'), '/ui/r/team/web?deleted=v2');
    assert.equal(await tagExists('v2'), false);
  });

  it('signing out needs the token too, and then clears the session cookie', async () => {
    const { cookie } = await signIn(base, 'alice');
    const page = await (await fetch(`${base}/ui/`, { headers: { cookie } })).text();
    assert.match(page, /Signed in as <\/span><strong>alice/);
    assert.equal((await post('/ui/sign-out', cookie, {})).status, 403);
    assert.match(await (await fetch(`${base}/ui/`, { headers: { cookie } })).text(), /<strong>alice/, 'still signed in');
    const out = await post('/ui/sign-out', cookie, { csrf: csrfOf(page) });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie') ?? '', /berth_session=; .*Max-Age=0/);
  });

  it('an anonymous visitor cannot delete, even with a valid token', async () => {
    const first = await fetch(`${base}/ui/r/public/app`);
    const csrfCookie = (first.headers.get('set-cookie') ?? '').split(';')[0] as string;
    assert.match(csrfCookie, /^berth_csrf=/);
    const csrf = csrfOf(await first.text());
    const refused = await post('/ui/r/public/app/-/tags/1.1/delete', csrfCookie, { csrf });
    assert.equal(refused.status, 403);
  });
});

describe('web UI pages load nothing from elsewhere, with little script', () => {
  let fixture: UiFixture;
  before(async () => {
    fixture = await startUiFixture();
  });
  after(() => fixture?.close());

  it('every page refers only to its own origin, sends a strict CSP, and its scripts weigh at most 50 KB gzipped', async () => {
    const { cookie } = await signIn(fixture.registry.url, 'root');
    const pages = ['/ui/', '/ui/?q=app', '/ui/r/public/app', `/ui/r/public/app/-/1.0`, '/ui/r/public/app/-/multi', '/ui/operations?preview=retention', '/ui/sign-in'];
    const scripts = new Set<string>();
    for (const path of pages) {
      const response = await fetch(`${fixture.registry.url}${path}`, { headers: { cookie } });
      assert.equal(response.status, 200, path);
      const csp = response.headers.get('content-security-policy') ?? '';
      for (const directive of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"])
        assert.ok(csp.includes(directive), `${path}: ${directive}`);
      const page = await response.text();
      // Whatever a browser would load by itself: scripts, styles, images, icons, fonts, frames.
      const loaded = [...page.matchAll(/<(?:script|img|iframe|source|link)\b[^>]*?\s(?:src|href)="([^"]*)"/g)].map((match) => match[1] as string);
      assert.ok(loaded.length >= 2, `${path}: its own script and style`);
      for (const url of loaded) assert.match(url, /^\/(?!\/)/, `${path} loads ${url}`);
      assert.doesNotMatch(page, /@import|url\(\s*['"]?(https?:)?\/\//, `${path}: no style from elsewhere`);
      for (const match of page.matchAll(/<script\b[^>]*\ssrc="([^"]+)"/g)) scripts.add(match[1] as string);
      assert.doesNotMatch(page, /<script(?![^>]*\ssrc=)[^>]*>/, `${path}: no inline script`);
    }
    let gzipped = 0;
    for (const script of scripts) {
      const response = await fetch(`${fixture.registry.url}${script}`);
      assert.equal(response.status, 200);
      const body = Buffer.from(await response.arrayBuffer());
      assert.doesNotMatch(body.toString(), /https?:\/\//, `${script} fetches nothing from elsewhere`);
      gzipped += gzipSync(body, { level: 9 }).length;
    }
    const css = [...new Set([...(await (await fetch(`${fixture.registry.url}/ui/`)).text()).matchAll(/<link[^>]*href="([^"]+\.css)"/g)].map((match) => match[1] as string))];
    for (const sheet of css) assert.doesNotMatch(await (await fetch(`${fixture.registry.url}${sheet}`)).text(), /@import|@font-face|url\(\s*['"]?(https?:)?\/\//);
    assert.ok(scripts.size >= 1 && gzipped <= 50 * 1024, `scripts: ${[...scripts].join(', ')}, ${gzipped} bytes gzipped`);
  });
});

describe('web UI over TLS', () => {
  let fixture: UiFixture;
  let ca: string;
  before(async () => {
    fixture = await startUiFixture({ 'tls.selfSigned': true, 'tls.hosts': ['127.0.0.1'] });
    const caPath = fixture.registry.server.security.caCert;
    assert.ok(caPath !== undefined);
    ca = await readFile(caPath, 'utf8');
  });
  after(() => fixture?.close());

  const request = (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
      const url = new URL(path, fixture.registry.url);
      const outgoing = httpsRequest(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, ca }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      });
      outgoing.on('error', reject);
      outgoing.end(init.body);
    });

  it('marks the session and CSRF cookies Secure, HttpOnly and SameSite, and the pull commands need no insecure flags', async () => {
    assert.match(fixture.registry.url, /^https:/);
    const signIn = await request('/ui/sign-in', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ user: 'alice', password: users.alice, next: '/ui/' }).toString(),
    });
    assert.equal(signIn.status, 303);
    const session = String(signIn.headers['set-cookie']);
    assert.match(session, /^berth_session=[^;]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=\d+; Secure$/);
    const anonymous = await request('/ui/');
    assert.equal(anonymous.status, 200);
    assert.match(String(anonymous.headers['set-cookie']), /^berth_csrf=[^;]+; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
    const image = await request('/ui/r/public/app/-/1.0');
    assert.equal(image.status, 200);
    assert.ok(image.body.includes(`podman pull ${fixture.registry.host}/public/app:1.0`), 'no --tls-verify=false over TLS');
    assert.doesNotMatch(image.body, /--tls-verify=false|--plain-http|--src-tls-verify=false/);
  });
});

describe('the image page of cached images', () => {
  let upstream: TestRegistry;
  let registry: TestRegistry;
  before(async () => {
    upstream = await startTestRegistry();
    registry = await startTestRegistry({ repositories: [{ prefix: 'up/', kind: 'proxy', upstream: upstream.url, tagTtl: '1h' }] });
  });
  after(async () => {
    await registry?.close();
    await upstream?.close();
  });

  it('a cached image names its upstream and when the tag was last checked there; its repository is listed as a proxy', async () => {
    const image = randomImage();
    await pushImage(upstream.url, 'team/app', 'v1', image);
    const pulled = await fetch(`${registry.url}/v2/up/team/app/manifests/v1`, { headers: { accept: mediaTypes.ociManifest } });
    assert.equal(pulled.status, 200);
    await pulled.arrayBuffer();
    const view = (await (await fetch(`${registry.url}/berth/api/v1/repositories/up/team/app/-/manifests/v1`)).json()) as {
      upstream?: { upstream: string; repository: string; checkedAt?: string };
    };
    assert.equal(view.upstream?.upstream, upstream.url);
    assert.equal(view.upstream?.repository, 'team/app');
    assert.ok(view.upstream?.checkedAt !== undefined && Date.now() - Date.parse(view.upstream.checkedAt) < 60_000, JSON.stringify(view.upstream));
    const page = await (await fetch(`${registry.url}/ui/r/up/team/app/-/v1`)).text();
    assert.match(page, /<dt>Upstream<\/dt><dd><code>http:\/\/127\.0\.0\.1:\d+<\/code> as <code>team\/app<\/code>/);
    const checked = /<dt>Tag last checked<\/dt><dd><time datetime="([^"]+)"/.exec(page)?.[1];
    assert.equal(checked, view.upstream?.checkedAt, 'the page shows when the tag was last checked');
    const listing = (await (await fetch(`${registry.url}/berth/api/v1/repositories`)).json()) as { repositories: { name: string; kind: string }[] };
    assert.deepEqual(listing.repositories, [{ ...listing.repositories[0], name: 'up/team/app', kind: 'proxy' }]);
  });
});

describe('archive and droplet repositories in the UI', () => {
  const guid = '3f1b6c1e-6a53-4c55-9a43-2f5c0c5b5a11';
  let files: { path: string; remove(): Promise<void> };
  let registry: TestRegistry;
  before(async () => {
    files = await tempDir('berth-ui-kinds');
    await mkdir(join(files.path, 'archives'));
    await writeOciArchive(join(files.path, 'archives', 'app.oci'), [{ image: randomImage(), tags: ['1.0'] }]);
    const rootfs = join(files.path, 'rootfs.tar.gz');
    await writeRootfs(rootfs, 'one', true);
    registry = await startTestRegistry({
      repositories: [
        { prefix: 'arch/', kind: 'archive', directory: join(files.path, 'archives'), watch: false },
        { prefix: 'cf/', kind: 'droplet', rootfs, rootfsCheckInterval: 0 },
        { prefix: '', kind: 'hosted' },
      ],
    });
    await pushImage(registry.url, 'team/app', 'v1', randomImage());
    const uploaded = await fetch(`${registry.url}/v2/cf/dev/shop/blobs/?guid=${guid}`, { method: 'POST', body: await buildDroplet() });
    assert.equal(uploaded.status, 201, await uploaded.text());
  });
  after(async () => {
    await registry?.close();
    await files?.remove();
  });

  it('lists every kind in name order, with counts where the index has them, and shows a droplet image with its app, droplet and rootfs', async () => {
    const listing = (await (await fetch(`${registry.url}/berth/api/v1/repositories`)).json()) as { repositories: { name: string; kind: string; tags?: number }[] };
    assert.deepEqual(
      listing.repositories.map((row) => [row.name, row.kind, row.tags]),
      [
        ['arch/app', 'archive', undefined],
        ['cf/dev/shop', 'droplet', 1],
        ['team/app', 'hosted', 1],
      ],
    );
    const tags = (await (await fetch(`${registry.url}/berth/api/v1/repositories/cf/dev/shop/-/tags`)).json()) as { tags: { tag: string }[] };
    assert.deepEqual(
      tags.tags.map((row) => row.tag),
      [guid, 'latest'],
      'the tag count is the number of droplets; latest names the newest',
    );
    const search = (await (await fetch(`${registry.url}/berth/api/v1/repositories?q=shop`)).json()) as { repositories: { name: string }[] };
    assert.deepEqual(
      search.repositories.map((row) => row.name),
      ['cf/dev/shop'],
    );
    assert.match(await (await fetch(`${registry.url}/ui/r/arch/app`)).text(), />1\.0<\/a>/);
    const page = await (await fetch(`${registry.url}/ui/r/cf/dev/shop/-/latest`)).text();
    assert.match(page, /<h2>Cloud Foundry droplet<\/h2>/);
    assert.ok(page.includes(`<dt>Droplet GUID</dt><dd><code>${guid}</code></dd>`), 'the droplet GUID');
    assert.match(page, /<dt>Rootfs version \(layer digest\)<\/dt><dd><code>sha256:[0-9a-f]{64}<\/code>/);
    assert.match(page, /<dt>App<\/dt><dd><code>[^<]+<\/code>/);
  });
});
