import type { QuotaUsage } from '../../policy/quotas.ts';
import type { RetentionReport } from '../../policy/retention.ts';
import type { RepositoryRow } from '../catalog.ts';
import type { LastGc } from '../dependencies.ts';
import { formatBytes, shortDigest, timeAgo } from '../format.ts';
import { html, type Html } from '../html.ts';
import type { RecentEvent } from '../recent-events.ts';
import { repositoryHref } from './repositories.ts';
import { imageHref } from './repository.ts';

export interface OperationsView {
  quotas: QuotaUsage[];
  largest: RepositoryRow[];
  gc: { last: LastGc | undefined; next?: Date; interval: number };
  retention: { configured: boolean; preview?: RetentionReport | 'busy' };
  events: RecentEvent[];
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function usageBar(label: string, used: number, max: number | undefined, format: (value: number) => string): Html {
  if (max === undefined) return html`<p>${label}: ${format(used)} <span class="muted">(no limit)</span></p>`;
  const percent = Math.min(100, Math.round((used / Math.max(max, 1)) * 100));
  return html`<p>${label}: ${format(used)} of ${format(max)} (${percent} %)</p>
<progress class="${percent >= 90 ? 'full' : ''}" max="100" value="${percent}" aria-label="${label} used">${percent} %</progress>`;
}

/** The operations page (administrators): quotas, largest repositories, GC, a retention preview, recent events. */
export function operationsPage(view: OperationsView): Html {
  const { last } = view.gc;
  const withUser = view.events.some((event) => event.user !== undefined);
  return html`<h1>Operations</h1>
<div class="grid">
  <section class="panel" aria-labelledby="gc-heading">
    <h2 id="gc-heading">Garbage collection</h2>
    <dl class="fields">
      <dt>Last pass</dt><dd>${last === undefined ? html`<span class="muted">none since this process started</span>` : html`${timeAgo(last.finishedAt)}, ${last.seconds.toFixed(1)} s`}</dd>
      ${last === undefined ? '' : html`<dt>Freed</dt><dd>${formatBytes(last.bytesFreed)}: ${last.blobsDeleted} blobs, ${last.manifestsDeleted} manifests, ${last.linksRemoved} links</dd>`}
      <dt>Next pass</dt><dd>${view.gc.next === undefined ? html`<span class="muted">${view.gc.interval > 0 ? 'running now or not yet scheduled' : 'not scheduled (gc.interval is 0)'}</span>` : timeAgo(view.gc.next)}</dd>
    </dl>
  </section>
  <section class="panel" aria-labelledby="quotas-heading">
    <h2 id="quotas-heading">Quotas</h2>
    ${
      view.quotas.length === 0
        ? html`<p class="muted">No quotas are configured.</p>`
        : view.quotas.map(
            (quota) =>
              html`<h3>${quota.name}</h3>${usageBar('Storage', quota.usedBytes, quota.maxBytes, formatBytes)}${usageBar('Repositories', quota.usedRepositories, quota.maxRepositories, String)}`,
          )
    }
  </section>
</div>
<h2 id="largest-heading">Largest repositories</h2>
${
  view.largest.length === 0
    ? html`<p class="muted">No repositories yet.</p>`
    : html`<div class="table-wrap"><table aria-labelledby="largest-heading">
  <thead><tr><th scope="col">Name</th><th scope="col" class="num">Tags</th><th scope="col" class="num">Size</th></tr></thead>
  <tbody>${view.largest.map((row) => html`<tr><td><a href="${repositoryHref(row.name)}">${row.name}</a></td><td class="num">${row.tags ?? '—'}</td><td class="num">${formatBytes(row.bytes ?? 0)}</td></tr>`)}</tbody>
</table></div>`
}
<h2 id="retention-heading">Retention</h2>
${retentionSection(view.retention)}
<h2 id="events-heading">Recent events</h2>
${
  view.events.length === 0
    ? html`<p class="muted">Nothing has happened since this process started.</p>`
    : html`<div class="table-wrap"><table aria-labelledby="events-heading">
  <thead><tr><th scope="col">When</th><th scope="col">What</th><th scope="col">Repository</th><th scope="col">Reference</th>${withUser ? html`<th scope="col" class="hide-narrow">By</th>` : ''}</tr></thead>
  <tbody>${view.events.map(
    (event) =>
      html`<tr><td>${timeAgo(event.at)}</td><td>${event.action}</td><td>${event.repository === undefined ? '—' : html`<a href="${repositoryHref(event.repository)}">${event.repository}</a>`}</td><td>${event.reference === undefined ? (event.detail ?? '') : html`<code>${event.reference.includes(':') ? shortDigest(event.reference) : event.reference}</code>`}</td>${withUser ? html`<td class="hide-narrow">${event.user ?? ''}</td>` : ''}</tr>`,
  )}</tbody>
</table></div>`
}`;
}

function retentionSection(retention: OperationsView['retention']): Html {
  if (!retention.configured) return html`<p class="muted">No retention policies are configured.</p>`;
  const { preview } = retention;
  if (preview === undefined) {
    return html`<p>See what the retention policies would delete now, without deleting anything.</p><p><a class="button" href="/ui/operations?preview=retention#retention-heading">Preview retention</a></p>`;
  }
  if (preview === 'busy') return html`<p class="notice">Retention is being applied elsewhere right now; try the preview again in a moment.</p>`;
  const bytes = preview.manifests.reduce((sum, manifest) => sum + manifest.size, 0);
  return html`<p>A dry run over ${plural(preview.repositories, 'repository', 'repositories')} would delete ${plural(preview.tags.length, 'tag')} and ${plural(preview.manifests.length, 'manifest')} (${formatBytes(bytes)} of manifests; their blobs go at the next garbage collection).</p>
${
  preview.tags.length === 0
    ? ''
    : html`<div class="table-wrap"><table aria-labelledby="retention-heading"><thead><tr><th scope="col">Repository</th><th scope="col">Tag</th><th scope="col">Digest</th></tr></thead>
<tbody>${preview.tags.slice(0, 200).map((tag) => html`<tr><td>${tag.repository}</td><td>${tag.tag}</td><td><a href="${imageHref(tag.repository, tag.digest)}">${shortDigest(tag.digest)}</a></td></tr>`)}</tbody></table></div>`
}`;
}
