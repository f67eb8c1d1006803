import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { launchBrowser, seriousViolations, type TestBrowser } from '../helpers/browser.ts';
import { missingCommands } from '../helpers/tools.ts';
import { startUiFixture, users, type UiFixture } from './fixture.ts';

async function assertAccessible(page: Page, what: string): Promise<void> {
  const violations = await seriousViolations(page);
  assert.deepEqual(violations, [], `${what}: ${JSON.stringify(violations, null, 2)}`);
}

async function signIn(page: Page, base: string, user: keyof typeof users): Promise<void> {
  await page.goto(`${base}/ui/sign-in`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(users[user]);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/ui/`);
}

/** What has the keyboard focus: its text, id, aria-label and whether it is inside an open dialog. */
function focused(page: Page): Promise<{ text: string; id: string; label: string | null; inDialog: boolean }> {
  return page.evaluate(() => {
    type Element = { textContent: string | null; id: string; getAttribute(name: string): string | null; closest(selector: string): unknown };
    const active = (globalThis as unknown as { document: { activeElement: Element | null } }).document.activeElement;
    return { text: active?.textContent?.trim() ?? '', id: active?.id ?? '', label: active?.getAttribute('aria-label') ?? null, inDialog: active?.closest('dialog[open]') != null };
  });
}

async function rowNames(page: Page): Promise<string[]> {
  return page.locator('#results tbody tr td:first-child a').allTextContents();
}

describe('web UI in Chromium', { skip: missingCommands('chromium') }, () => {
  let fixture: UiFixture;
  let browser: TestBrowser;
  let page: Page;
  let base: string;
  /** Every URL the browser asked for, in every test. */
  const requested: string[] = [];
  before(async () => {
    fixture = await startUiFixture();
    base = fixture.registry.url;
    browser = await launchBrowser();
    browser.context.on('request', (request) => requested.push(request.url()));
    page = await browser.context.newPage();
  });
  after(async () => {
    await browser?.close();
    await fixture?.close();
  });

  it('a signed-out visitor lands on the UI from / and sees only what anyone may pull', async () => {
    await browser.context.clearCookies();
    await page.goto(`${base}/`);
    assert.equal(page.url(), `${base}/ui/`);
    assert.deepEqual(await rowNames(page), ['public/app']);
    const text = await page.content();
    for (const hidden of ['team/', 'secret', 'keys']) assert.ok(!text.includes(hidden), `the page mentions ${hidden}`);
    // Searching for a private name says nothing about it.
    await page.getByLabel('Search repositories').fill('secret');
    await page.locator('#results p[data-count]').waitFor();
    assert.ok(!(await page.content()).includes('secret/keys'));
    await page.goto(`${base}/ui/r/secret/keys`);
    assert.match((await page.locator('h1').textContent()) ?? '', /Not found/);
    await assertAccessible(page, 'repositories, signed out');
  });

  it('signs in with a registry user and searches as you type', async () => {
    await signIn(page, base, 'alice');
    assert.match((await page.locator('.who').textContent()) ?? '', /Signed in as alice/);
    assert.deepEqual(await rowNames(page), ['public/app', 'team/api', 'team/tools/builder', 'team/web']);
    await page.getByLabel('Search repositories').pressSequentially('buil', { delay: 30 });
    await page.waitForFunction(
      () => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#results tbody tr').length === 1,
    );
    assert.deepEqual(await rowNames(page), ['team/tools/builder']);
    assert.match(page.url(), /\?q=buil&/);
    await page.getByLabel('Search repositories').fill('team/');
    await page.getByLabel('Match').selectOption('prefix');
    await page.waitForURL(/match=prefix/);
    await page.waitForFunction(
      () => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#results tbody tr').length === 3,
    );
    await page.getByLabel('Sort by').selectOption('size');
    await page.waitForURL(/sort=size/);
    await assertAccessible(page, 'repositories, signed in, searching');
  });

  it('filters tags on the repository page', async () => {
    await page.goto(`${base}/ui/r/public/app`);
    const tags = () => page.locator('#tags tbody tr td:first-child a').allTextContents();
    assert.deepEqual(await tags(), ['1.0', '1.1', 'latest', 'multi']);
    assert.equal(await page.locator('#tags .badge.lock').count(), 1);
    await page.getByLabel('Filter tags').pressSequentially('1.', { delay: 30 });
    await page.waitForFunction(
      () => (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }).document.querySelectorAll('#tags tbody tr').length === 2,
    );
    assert.deepEqual(await tags(), ['1.0', '1.1']);
    await assertAccessible(page, 'repository page');
  });

  it('shows an image with its layers, config, pull commands and referrers', async () => {
    await page.goto(`${base}/ui/r/public/app`);
    await page.getByRole('link', { name: '1.0', exact: true }).click();
    await page.waitForURL(/\/-\/1\.0$/);
    assert.equal(await page.locator('h1').textContent(), 'public/app:1.0');
    const body = (await page.locator('main').textContent()) ?? '';
    for (const expected of ['Layers', '/bin/app', 'MODE=production', 'Signatures', 'SBOMs', 'docker pull', 'podman pull', 'ctr image pull', 'skopeo copy']) {
      assert.ok(body.includes(expected), `the image page lacks ${expected}`);
    }
    // The SBOM's own signature hangs below it.
    assert.equal(await page.locator('ul.tree ul.tree ul.tree ul.tree').count(), 1);
    await page.getByRole('button', { name: 'Copy the docker command' }).click();
    // Writing to the clipboard is asynchronous; the status follows it.
    await page.locator('#status', { hasText: 'Copied' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#status').textContent(), 'Copied to the clipboard');
    const copied = await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText());
    assert.equal(copied, `docker pull ${fixture.registry.host}/public/app:1.0`);
    await assertAccessible(page, 'image page');
    // A referrer opens as an image of its own.
    await page.locator('ul.tree a').first().click();
    await page.waitForURL(/\/-\/sha256:/);
    await assertAccessible(page, 'referrer page');
    await page.goto(`${base}/ui/r/public/app/-/multi`);
    assert.deepEqual(await page.locator('main table tbody tr td:first-child a').allTextContents(), ['linux/amd64', 'linux/arm64']);
  });

  it('works from the keyboard: the skip link first, Tab reaches a delete button, its dialog keeps focus and closes with Escape', async () => {
    await page.goto(`${base}/ui/r/team/web`);
    await page.keyboard.press('Tab');
    assert.equal((await focused(page)).text, 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal((await focused(page)).id, 'content');
    let presses = 0;
    while ((await focused(page)).label !== 'Delete tag latest') {
      assert.ok(++presses < 40, 'Tab reaches the delete button');
      await page.keyboard.press('Tab');
    }
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.deepEqual(await focused(page), { text: 'Cancel', id: '', label: null, inDialog: true });
    const seen: string[] = [];
    for (const key of ['Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
      await page.keyboard.press(key);
      const now = await focused(page);
      assert.equal(now.inDialog, true, `focus stays in the dialog after ${key}`);
      seen.push(now.text);
    }
    assert.deepEqual(seen, ['Delete', 'Cancel', 'Delete', 'Cancel', 'Delete', 'Cancel']);
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await page.locator('#tags tbody tr', { hasText: 'latest' }).count(), 1, 'nothing was deleted');
  });

  it('deletes a tag after confirmation, and not when cancelled', async () => {
    await page.goto(`${base}/ui/r/team/web`);
    const row = page.locator('#tags tbody tr', { hasText: 'v2' });
    await row.getByRole('link', { name: 'Delete tag v2' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /Delete the tag v2 from team\/web\?/);
    await assertAccessible(page, 'delete dialog');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.equal(await row.count(), 1);
    await row.getByRole('link', { name: 'Delete tag v2' }).click();
    await dialog.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(/deleted=v2/);
    assert.match((await page.locator('.notice').textContent()) ?? '', /Deleted the tag v2/);
    assert.equal(await page.locator('#tags tbody tr', { hasText: 'v2' }).count(), 0);
    assert.equal((await fetch(`${base}/v2/team/web/manifests/v2`, { headers: { authorization: `Basic ${Buffer.from(`alice:${users.alice}`).toString('base64')}` } })).status, 404);
    // Bob may pull but not delete: no delete buttons.
    await signIn(page, base, 'bob');
    await page.goto(`${base}/ui/r/team/web`);
    assert.equal(await page.getByRole('link', { name: /^Delete tag/ }).count(), 0);
  });

  it('switches to dark mode and keeps it', async () => {
    await page.goto(`${base}/ui/`);
    const background = () =>
      page.evaluate(() => {
        const global = globalThis as unknown as { getComputedStyle(element: unknown): { backgroundColor: string }; document: { body: unknown } };
        return global.getComputedStyle(global.document.body).backgroundColor;
      });
    const light = await background();
    await page.getByRole('button', { name: 'Dark mode' }).click();
    assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
    assert.notEqual(await background(), light);
    await page.reload();
    assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
    assert.equal(await page.getByRole('button', { name: 'Dark mode' }).getAttribute('aria-pressed'), 'true');
    await assertAccessible(page, 'repositories, dark');
    await page.goto(`${base}/ui/r/public/app`);
    assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
    await assertAccessible(page, 'repository page, dark');
    await page.goto(`${base}/ui/r/public/app/-/1.0`);
    await assertAccessible(page, 'image page, dark');
    await page.getByRole('button', { name: 'Dark mode' }).click();
  });

  it('shows operations to an administrator, with quota bars and a retention preview', async () => {
    await page.goto(`${base}/ui/`);
    assert.equal(await page.getByRole('link', { name: 'Operations' }).count(), 0, 'bob is no administrator');
    assert.equal((await page.goto(`${base}/ui/operations`))?.status(), 403);
    await signIn(page, base, 'root');
    await page.getByRole('link', { name: 'Operations' }).click();
    await page.waitForURL(`${base}/ui/operations`);
    assert.equal(await page.locator('progress').count(), 2);
    assert.ok(((await page.locator('main').textContent()) ?? '').includes('public/app'));
    await page.getByRole('link', { name: 'Preview retention' }).click();
    await page.waitForURL(/preview=retention/);
    assert.match((await page.locator('main').textContent()) ?? '', /A dry run over \d+ repositor(y|ies) would delete/);
    await assertAccessible(page, 'operations');
  });

  it('fits a phone-width window: no page scrolls sideways', async () => {
    await page.setViewportSize({ width: 390, height: 800 });
    try {
      for (const path of ['/ui/', '/ui/r/public/app', '/ui/r/public/app/-/1.0', '/ui/r/public/app/-/multi', '/ui/operations', '/ui/sign-in']) {
        await page.goto(`${base}${path}`);
        const widths = await page.evaluate(() => {
          const global = globalThis as unknown as { innerWidth: number; document: { documentElement: { scrollWidth: number } } };
          return { scroll: global.document.documentElement.scrollWidth, window: global.innerWidth };
        });
        assert.ok(widths.scroll <= widths.window, `${path}: ${widths.scroll} px wide in a ${widths.window} px window`);
      }
      await assertAccessible(page, 'sign-in, phone width');
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it('signs out, after which private names are gone again', async () => {
    await page.goto(`${base}/ui/`);
    assert.ok((await rowNames(page)).includes('secret/keys'));
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(`${base}/ui/`);
    assert.deepEqual(await rowNames(page), ['public/app']);
    assert.equal(await page.locator('.who').getByRole('link', { name: 'Sign in' }).count(), 1);
    await page.goto(`${base}/ui/sign-in`);
    await page.getByLabel('User name').fill('alice');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    assert.match((await page.locator('.notice.error').textContent()) ?? '', /Wrong user name or password/);
    await assertAccessible(page, 'sign-in with an error');
  });

  it('loaded nothing from anywhere but the registry itself, in any of the flows above', () => {
    assert.ok(requested.length > 20, `${requested.length} requests`);
    const elsewhere = requested.filter((url) => !url.startsWith(`${base}/`) && !url.startsWith('data:'));
    assert.deepEqual(elsewhere, []);
  });
});
