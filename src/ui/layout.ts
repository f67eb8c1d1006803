import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { html, raw, type Html } from './html.ts';
import { parseCookies, type Viewer } from './session.ts';

/** The UI's static files, read once; their URLs carry a hash of their content so browsers may keep them. */
function asset(file: string, type: string): { path: string; body: Buffer; type: string } {
  const body = readFileSync(new URL(`./assets/${file}`, import.meta.url));
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 10);
  const [base, extension] = file.split('.');
  return { path: `/ui/assets/${base}.${hash}.${extension}`, body, type };
}

export const assets = [asset('berth.css', 'text/css; charset=utf-8'), asset('berth.js', 'text/javascript; charset=utf-8')];
const [css, js] = assets as [(typeof assets)[0], (typeof assets)[0]];

const logo = raw(
  '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" d="M3 14h18l-2.5 5.5a1 1 0 0 1-.9.5H6.4a1 1 0 0 1-.9-.5zM6 8h4v5H6zm5-3h4v8h-4zm5 4h3v4h-3z"/></svg>',
);

/** Headers every UI page carries: nothing from elsewhere may load, and no other site may frame it. */
export const securityHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export interface PageOptions {
  title: string;
  /** Which navigation entry is current. */
  section?: 'repositories' | 'operations' | 'sign-in';
  status?: number;
  notice?: { kind: 'ok' | 'error' | 'info'; text: string };
}

/** Sends a whole page. */
export function sendPage(request: FastifyRequest, reply: FastifyReply, viewer: Viewer | undefined, options: PageOptions, body: Html): FastifyReply {
  const theme = parseCookies(request.headers.cookie).get('berth_theme');
  const themeAttribute = theme === 'dark' || theme === 'light' ? theme : undefined;
  const current = (section: PageOptions['section']) => (options.section === section ? raw(' aria-current="page"') : '');
  const page = html`<!doctype html>
<html lang="en"${themeAttribute === undefined ? '' : raw(` data-theme="${themeAttribute}"`)}>
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · Berth</title>
<link rel="stylesheet" href="${css.path}">
<script src="${js.path}" defer></script>
</head>
<body>
<a class="skip" href="#content">Skip to content</a>
<header class="top">
  <a class="brand" href="/ui/">${logo}<span>Berth</span></a>
  <nav class="main" aria-label="Main">
    <a href="/ui/"${current('repositories')}>Repositories</a>
    ${viewer?.admin === true ? html`<a href="/ui/operations"${current('operations')}>Operations</a>` : ''}
  </nav>
  <div class="who">
    <button type="button" id="theme" aria-pressed="${themeAttribute === 'dark' ? 'true' : 'false'}" title="Switch between light and dark">Dark mode</button>
    ${whoAmI(viewer)}
  </div>
</header>
<main id="content" tabindex="-1">
${options.notice === undefined ? '' : html`<p class="notice ${options.notice.kind}" role="${options.notice.kind === 'error' ? 'alert' : 'status'}">${options.notice.text}</p>`}
${body}
</main>
<div id="status" class="sr-only" role="status" aria-live="polite"></div>
<dialog id="confirm" aria-labelledby="confirm-title">
  <form method="post">
    <h2 id="confirm-title">Are you sure?</h2>
    <p data-message></p>
    <input type="hidden" name="csrf" value="${viewer?.csrf ?? ''}">
    <div class="actions"><button type="button" value="cancel">Cancel</button><button type="submit" class="danger solid">Delete</button></div>
  </form>
</dialog>
</body>
</html>`;
  return reply
    .code(options.status ?? 200)
    .headers(securityHeaders)
    .header('content-type', 'text/html; charset=utf-8')
    .send(page.text);
}

function whoAmI(viewer: Viewer | undefined): Html {
  if (viewer === undefined || !viewer.accessControl) return html``;
  if (!viewer.signedIn) return html`<a class="button primary" href="/ui/sign-in">Sign in</a>`;
  return html`<span><span class="hide-narrow">Signed in as </span><strong>${viewer.caller.user ?? ''}</strong></span>
    <form method="post" action="/ui/sign-out"><input type="hidden" name="csrf" value="${viewer.csrf}"><button type="submit">Sign out</button></form>`;
}

/** Sends only a fragment (live search results). */
export function sendFragment(reply: FastifyReply, body: Html): FastifyReply {
  return reply.headers(securityHeaders).header('content-type', 'text/html; charset=utf-8').send(body.text);
}
