import type { RepositorySummary } from '../../meta/browse-index.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { RepositoryKind } from '../dependencies.ts';
import { copyableDigest, formatBytes, shortMediaType, timeAgo } from '../format.ts';
import { html, query, type Html } from '../html.ts';
import type { TagListing } from '../tags.ts';
import type { Viewer } from '../session.ts';
import { repositoryHref } from './repositories.ts';

export interface RepositoryView {
  name: RepositoryName;
  kind: RepositoryKind;
  summary?: Omit<RepositorySummary, 'cursor'>;
  upstream?: { upstream: string; repository: string };
  filter: string;
  after?: string;
  tags: TagListing;
}

export function imageHref(name: string, reference: string): string {
  return `/ui/r/${name}/-/${reference}`;
}

export function deleteTagHref(name: string, tag: string): string {
  return `/ui/r/${name}/-/tags/${tag}/delete`;
}

/** The repository page: its tags, filtered and paged, each with what it names. */
export function repositoryPage(viewer: Viewer, view: RepositoryView): Html {
  const { summary } = view;
  return html`<p class="crumbs"><a href="/ui/">Repositories</a> /</p>
<h1>${view.name} <span class="badge ${view.kind}">${view.kind}</span></h1>
<dl class="fields panel">
  ${summary === undefined ? '' : html`<dt>Tags</dt><dd>${summary.tags}</dd><dt>Size</dt><dd>${formatBytes(summary.bytes)} <span class="muted">(distinct blobs)</span></dd><dt>Last push</dt><dd>${timeAgo(summary.pushedAt)}</dd>`}
  ${view.upstream === undefined ? '' : html`<dt>Upstream</dt><dd><code>${view.upstream.upstream}</code> as <code>${view.upstream.repository}</code></dd>`}
</dl>
<h2 id="tags-heading">Tags</h2>
<form class="toolbar" method="get" action="${repositoryHref(view.name)}" data-live="tags" role="search" aria-labelledby="tags-heading">
  <label class="grow">Filter tags
    <input type="search" name="filter" value="${view.filter}" placeholder="Part of a tag, e.g. 1.2" autocomplete="off" spellcheck="false">
  </label>
  <button type="submit">Filter</button>
</form>
<div id="tags">${tagResults(viewer, view)}</div>`;
}

/** The tags region (also sent alone while typing a filter). */
export function tagResults(_viewer: Viewer, view: RepositoryView): Html {
  const { rows, next } = view.tags;
  const count = rows.length === 0 ? 'No tags match' : `${rows.length}${next === undefined ? '' : '+'} tags`;
  if (rows.length === 0) {
    return html`<p class="panel" data-count="${count}">${view.filter === '' ? 'This repository has no tags.' : html`No tag contains <code>${view.filter}</code>.`}</p>`;
  }
  const anyDeletable = rows.some((row) => row.deletable);
  return html`<div class="table-wrap" data-count="${count}">
<table>
  <caption class="sr-only">Tags of ${view.name}</caption>
  <thead><tr>
    <th scope="col">Tag</th><th scope="col">Digest</th><th scope="col" class="hide-narrow">Type</th><th scope="col" class="num">Size</th>
    <th scope="col" class="hide-narrow">Pushed</th><th scope="col" class="hide-narrow">Last pulled</th>${anyDeletable ? html`<th scope="col"><span class="sr-only">Actions</span></th>` : ''}
  </tr></thead>
  <tbody>
  ${rows.map(
    (row) => html`<tr>
    <td><a href="${imageHref(view.name, row.tag)}">${row.tag}</a>${row.immutable ? html` <span class="badge lock" title="This tag never moves once pushed">immutable</span>` : ''}</td>
    <td>${copyableDigest(row.digest, `Copy the digest of ${row.tag}`)}</td>
    <td class="hide-narrow">${shortMediaType(row.mediaType)}${row.platforms.length === 0 ? '' : html`<br><span class="muted">${row.platforms.join(', ')}</span>`}</td>
    <td class="num">${formatBytes(row.size)}</td>
    <td class="hide-narrow">${timeAgo(row.pushedAt)}</td>
    <td class="hide-narrow">${timeAgo(row.pulledAt)}</td>
    ${anyDeletable ? html`<td>${row.deletable ? html`<a class="button danger" href="${deleteTagHref(view.name, row.tag)}" data-action="${deleteTagHref(view.name, row.tag)}" data-confirm="Delete the tag ${row.tag} from ${view.name}? The image stays while other tags or digests name it." aria-label="Delete tag ${row.tag}">Delete</a>` : ''}</td>` : ''}
  </tr>`,
  )}
  </tbody>
</table>
</div>
<nav class="pager" aria-label="Pages of tags">
  ${view.after === undefined ? '' : html`<a href="${repositoryHref(view.name)}${query({ filter: view.filter })}">First page</a>`}
  ${next === undefined ? '' : html`<a href="${repositoryHref(view.name)}${query({ filter: view.filter, after: next })}" rel="next">Next page</a>`}
</nav>`;
}

/** The confirmation page for deleting a tag without script. */
export function confirmDeletePage(viewer: Viewer, name: string, tag: string): Html {
  return html`<p class="crumbs"><a href="/ui/">Repositories</a> / <a href="${repositoryHref(name)}">${name}</a> /</p>
<h1>Delete the tag ${tag}?</h1>
<form method="post" action="${deleteTagHref(name, tag)}" class="panel">
  <p>The tag <code>${tag}</code> will no longer name an image in <code>${name}</code>. The image stays while other tags or digests name it; garbage collection frees what nothing names.</p>
  <input type="hidden" name="csrf" value="${viewer.csrf}">
  <div class="actions"><a class="button" href="${repositoryHref(name)}">Cancel</a><button type="submit" class="danger solid">Delete</button></div>
</form>`;
}
