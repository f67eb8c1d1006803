import { html, type Html } from '../html.ts';

/** The sign-in form; `next` is where to go afterwards (a path under /ui/). */
export function signInPage(options: { user?: string; next?: string; available: boolean }): Html {
  if (!options.available) {
    return html`<div class="signin panel"><h1>Sign in</h1><p>Access control is off on this registry: everyone may browse and change everything, so there is nobody to sign in as. See docs/auth.md to add users.</p></div>`;
  }
  return html`<form class="signin panel" method="post" action="/ui/sign-in">
  <h1>Sign in</h1>
  <p class="muted">With your registry user name and password (the ones <code>docker login</code> takes).</p>
  <label for="user">User name</label>
  <input type="text" id="user" name="user" value="${options.user ?? ''}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
  <label for="password">Password</label>
  <input type="password" id="password" name="password" autocomplete="current-password" required>
  <input type="hidden" name="next" value="${options.next ?? '/ui/'}">
  <button type="submit" class="primary">Sign in</button>
</form>`;
}

/** A page for errors shown to people (not found, refused). */
export function errorPage(title: string, message: string): Html {
  return html`<h1>${title}</h1><p>${message}</p><p><a href="/ui/">Back to the repositories</a></p>`;
}
