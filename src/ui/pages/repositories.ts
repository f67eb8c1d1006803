import type { RepositoryListing, ListingRequest } from '../catalog.ts';
import { formatBytes, timeAgo } from '../format.ts';
import { html, query, type Html } from '../html.ts';
import type { Viewer } from '../session.ts';

/** Where a repository's page is. */
export function repositoryHref(name: string): string {
  return `/ui/r/${name}`;
}

const sorts = [
  ['name', 'Name'],
  ['pushed', 'Last push'],
  ['size', 'Size'],
] as const;

/** The repositories page: search as you type, sort, page. */
export function repositoriesPage(viewer: Viewer, request: ListingRequest, listing: RepositoryListing): Html {
  return html`<h1>Repositories</h1>
<form class="toolbar" method="get" action="/ui/" data-live="results" role="search">
  <label class="grow">Search repositories
    <input type="search" name="q" value="${request.search}" placeholder="Part of a name" autocomplete="off" spellcheck="false" autofocus>
  </label>
  <label>Match
    <select name="match">
      <option value="substring"${request.match === 'substring' ? html` selected` : ''}>Contains</option>
      <option value="prefix"${request.match === 'prefix' ? html` selected` : ''}>Starts with</option>
    </select>
  </label>
  <label>Sort by
    <select name="sort">
      ${sorts.map(([value, label]) => html`<option value="${value}"${request.sort === value ? html` selected` : ''}>${label}</option>`)}
    </select>
  </label>
  <button type="submit">Search</button>
</form>
${viewer.accessControl && !viewer.signedIn ? html`<p class="muted">You see the repositories anyone may pull. <a href="/ui/sign-in">Sign in</a> to see yours.</p>` : ''}
<div id="results">${repositoryResults(request, listing)}</div>`;
}

/** The results region (also sent alone while typing). */
export function repositoryResults(request: ListingRequest, listing: RepositoryListing): Html {
  const count = listing.rows.length === 0 ? 'No repositories match' : `${listing.rows.length}${listing.next === undefined ? '' : '+'} repositories`;
  if (listing.rows.length === 0) {
    return html`<p class="panel" data-count="${count}">${request.search === '' ? 'No repositories yet. Push an image to see it here.' : html`No repository matches <code>${request.search}</code>.`}</p>`;
  }
  const base = { q: request.search, match: request.match === 'substring' ? undefined : request.match, sort: request.sort === 'name' ? undefined : request.sort };
  return html`<div class="table-wrap" data-count="${count}">
<table>
  <caption class="sr-only">Repositories${request.search === '' ? '' : ` matching ${request.search}`}</caption>
  <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col" class="num">Tags</th><th scope="col" class="hide-narrow">Last push</th><th scope="col" class="num">Size</th></tr></thead>
  <tbody>
  ${listing.rows.map(
    (row) => html`<tr>
    <td><a href="${repositoryHref(row.name)}">${row.name}</a></td>
    <td><span class="badge ${row.kind}">${row.kind}</span></td>
    <td class="num">${row.tags ?? '—'}</td>
    <td class="hide-narrow">${row.pushedAt === undefined ? html`<span class="muted">—</span>` : timeAgo(row.pushedAt)}</td>
    <td class="num">${row.bytes === undefined ? '—' : formatBytes(row.bytes)}</td>
  </tr>`,
  )}
  </tbody>
</table>
</div>
<nav class="pager" aria-label="Pages">
  ${request.after === undefined ? '' : html`<a href="/ui/${query(base)}">First page</a>`}
  ${listing.next === undefined ? '' : html`<a href="/ui/${query({ ...base, after: listing.next })}" rel="next">Next page</a>`}
  ${listing.partial ? html`<span class="muted">This page stopped early after skipping many repositories you may not see.</span>` : ''}
</nav>`;
}
