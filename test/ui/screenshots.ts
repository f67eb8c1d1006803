// `npm run ui:screenshots`: the main pages of the web UI, light and dark,
// into docs/ui/ (shown in docs/ui.md). Needs Debian's chromium.
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from '../helpers/browser.ts';
import { startUiFixture, users } from './fixture.ts';

const out = resolve(dirname(fileURLToPath(import.meta.url)), '../../docs/ui');
await mkdir(out, { recursive: true });
const fixture = await startUiFixture();
const base = fixture.registry.url;
const pages: [string, string][] = [
  ['repositories', '/ui/'],
  ['repository', '/ui/r/public/app'],
  ['image', '/ui/r/public/app/-/1.0'],
  ['index', '/ui/r/public/app/-/multi'],
  ['operations', '/ui/operations?preview=retention'],
];
try {
  for (const scheme of ['light', 'dark'] as const) {
    const browser = await launchBrowser({ colorScheme: scheme, viewport: { width: 1200, height: 800 } });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${base}/ui/sign-in`);
      await page.screenshot({ path: join(out, `sign-in-${scheme}.png`) });
      await page.getByLabel('User name').fill('root');
      await page.getByLabel('Password').fill(users.root);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL(`${base}/ui/`);
      for (const [name, path] of pages) {
        await page.goto(`${base}${path}`);
        await page.screenshot({ path: join(out, `${name}-${scheme}.png`), fullPage: true });
      }
      await page.setViewportSize({ width: 390, height: 800 });
      await page.goto(`${base}/ui/r/public/app`);
      await page.screenshot({ path: join(out, `repository-narrow-${scheme}.png`), fullPage: true });
    } finally {
      await browser.close();
    }
  }
  process.stdout.write(`screenshots in ${out}\n`);
} finally {
  await fixture.close();
}
