import type { RepositoryKind } from '../dependencies.ts';
import { copyButton, copyableDigest, formatBytes, shortDigest, shortMediaType, timeAgo } from '../format.ts';
import { html, type Html } from '../html.ts';
import { artifactLabel, type ImageConfig, type ManifestSummary, type ReferrerGroup } from '../images.ts';
import { repositoryHref } from './repositories.ts';
import { imageHref } from './repository.ts';

export interface ImageView {
  name: string;
  kind: RepositoryKind;
  /** As the page was asked for: a tag or a digest. */
  reference: string;
  manifest: ManifestSummary;
  config?: ImageConfig;
  referrers: ReferrerGroup[];
  /** host[:port] clients pull from. */
  host: string;
  /** Whether clients reach the registry over plain HTTP. */
  plainHttp: boolean;
  upstream?: { upstream: string; repository: string; checkedAt?: Date };
}

const dropletLabels: [string, string][] = [
  ['org.cloudfoundry.app.name', 'App'],
  ['org.cloudfoundry.app.guid', 'App GUID'],
  ['org.cloudfoundry.droplet.guid', 'Droplet GUID'],
  ['org.cloudfoundry.droplet.digest', 'Droplet digest'],
  ['org.cloudfoundry.rootfs.digest', 'Rootfs version (layer digest)'],
];

export function pullCommands(view: Pick<ImageView, 'name' | 'reference' | 'host' | 'plainHttp'>): [string, string][] {
  const separator = view.reference.includes(':') ? '@' : ':';
  const image = `${view.host}/${view.name}${separator}${view.reference}`;
  const insecure = view.plainHttp;
  return [
    ['docker', `docker pull ${image}`],
    ['podman', `podman pull ${insecure ? '--tls-verify=false ' : ''}${image}`],
    ['ctr', `ctr image pull ${insecure ? '--plain-http ' : ''}${image}`],
    ['skopeo', `skopeo copy ${insecure ? '--src-tls-verify=false ' : ''}docker://${image} oci:${view.name.split('/').pop() ?? 'image'}`],
  ];
}

/** The image page: a manifest or an index, its config, layers, referrers and how to pull it. */
export function imagePage(view: ImageView): Html {
  const { manifest } = view;
  const title = view.reference.includes(':') ? `${view.name}@${shortDigest(view.reference)}` : `${view.name}:${view.reference}`;
  const labels = view.config?.labels ?? {};
  const droplet = dropletLabels.filter(([key]) => labels[key] !== undefined);
  return html`<p class="crumbs"><a href="/ui/">Repositories</a> / <a href="${repositoryHref(view.name)}">${view.name}</a> /</p>
<h1>${title}</h1>
<div class="grid">
  <section class="panel" aria-labelledby="summary-heading">
    <h2 id="summary-heading" class="sr-only">Summary</h2>
    <dl class="fields">
      <dt>Digest</dt><dd>${copyableDigest(manifest.digest)}</dd>
      <dt>Type</dt><dd>${shortMediaType(manifest.mediaType)}${manifest.artifactType === undefined ? '' : html`<br><code>${manifest.artifactType}</code>`}</dd>
      <dt>Size</dt><dd>${formatBytes(manifest.size)}</dd>
      ${manifest.subject === undefined ? '' : html`<dt>Refers to</dt><dd><a href="${imageHref(view.name, manifest.subject)}">${shortDigest(manifest.subject)}</a></dd>`}
      ${view.config?.created === undefined ? '' : html`<dt>Created</dt><dd>${timeAgo(new Date(view.config.created))}</dd>`}
      ${view.config?.os === undefined ? '' : html`<dt>Platform</dt><dd>${view.config.os}/${view.config.architecture ?? ''}</dd>`}
      ${view.upstream === undefined ? '' : html`<dt>Upstream</dt><dd><code>${view.upstream.upstream}</code> as <code>${view.upstream.repository}</code></dd><dt>Tag last checked</dt><dd>${timeAgo(view.upstream.checkedAt)}</dd>`}
    </dl>
  </section>
  <section class="panel" aria-labelledby="pull-heading">
    <h2 id="pull-heading">Pull</h2>
    <div class="pull">
      ${pullCommands(view).map(([client, command]) => html`<span>${client}</span><pre><code>${command}</code></pre>${copyButton(command, `Copy the ${client} command`)}`)}
    </div>
  </section>
</div>
${droplet.length === 0 ? '' : html`<h2>Cloud Foundry droplet</h2><dl class="fields panel">${droplet.map(([key, label]) => html`<dt>${label}</dt><dd><code>${labels[key] ?? ''}</code></dd>`)}</dl>`}
${manifest.kind === 'index' ? platformsSection(view) : layersSection(view)}
${view.config === undefined ? '' : configSection(view.config)}
<h2 id="referrers-heading">Referrers</h2>
${view.referrers.length === 0 ? html`<p class="muted">No signatures, SBOMs or attestations refer to this ${manifest.kind}.</p>` : html`<div class="panel" aria-labelledby="referrers-heading">${referrerGroups(view.name, view.referrers)}</div>`}
${Object.keys(manifest.annotations).length === 0 ? '' : html`<h2>Annotations</h2>${fieldTable(manifest.annotations, 'Annotations')}`}`;
}

function platformsSection(view: ImageView): Html {
  return html`<h2>Platforms</h2>
<div class="table-wrap"><table>
  <caption class="sr-only">Platforms of this index</caption>
  <thead><tr><th scope="col">Platform</th><th scope="col">Digest</th><th scope="col" class="num">Size</th></tr></thead>
  <tbody>${view.manifest.platforms.map(
    (platform) =>
      html`<tr><td><a href="${imageHref(view.name, platform.digest)}">${platform.platform}</a></td><td>${copyableDigest(platform.digest)}</td><td class="num">${formatBytes(platform.size)}</td></tr>`,
  )}</tbody>
</table></div>`;
}

function layersSection(view: ImageView): Html {
  const { manifest } = view;
  return html`<h2>Layers</h2>
<div class="table-wrap"><table>
  <caption class="sr-only">Layers, base first</caption>
  <thead><tr><th scope="col" class="num">#</th><th scope="col">Digest</th><th scope="col" class="hide-narrow">Media type</th><th scope="col" class="num">Size</th></tr></thead>
  <tbody>${manifest.layers.map(
    (layer, index) =>
      html`<tr><td class="num">${index + 1}</td><td>${copyableDigest(layer.digest, `Copy the digest of layer ${index + 1}`)}</td><td class="hide-narrow"><code>${layer.mediaType}</code></td><td class="num">${formatBytes(layer.size)}</td></tr>`,
  )}</tbody>
</table></div>`;
}

function configSection(config: ImageConfig): Html {
  const list = (values: string[] | undefined) => (values === undefined ? html`<span class="muted">none</span>` : html`<code>${JSON.stringify(values)}</code>`);
  return html`<h2>Config</h2>
<dl class="fields panel">
  <dt>Entrypoint</dt><dd>${list(config.entrypoint)}</dd>
  <dt>Cmd</dt><dd>${list(config.cmd)}</dd>
  <dt>User</dt><dd>${config.user === undefined ? html`<span class="muted">root (default)</span>` : html`<code>${config.user}</code>`}</dd>
  <dt>Working dir</dt><dd>${config.workingDir === undefined ? html`<span class="muted">/</span>` : html`<code>${config.workingDir}</code>`}</dd>
  ${config.exposedPorts.length === 0 ? '' : html`<dt>Ports</dt><dd>${config.exposedPorts.join(', ')}</dd>`}
  <dt>Environment</dt><dd>${config.env.length === 0 ? html`<span class="muted">none</span>` : html`<pre>${config.env.join('\n')}</pre>`}</dd>
</dl>
${Object.keys(config.labels).length === 0 ? '' : html`<h3>Labels</h3>${fieldTable(config.labels, 'Labels')}`}
${
  config.history.length === 0
    ? ''
    : html`<details class="panel"><summary>History (${config.history.length} steps)</summary>
<ol>${config.history.map((step) => html`<li>${step.createdBy === undefined ? html`<span class="muted">(no command)</span>` : html`<code>${step.createdBy}</code>`}${step.emptyLayer ? html` <span class="badge">no layer</span>` : ''}</li>`)}</ol></details>`
}`;
}

function fieldTable(fields: Record<string, string>, caption: string): Html {
  return html`<div class="table-wrap"><table><caption class="sr-only">${caption}</caption>
<thead><tr><th scope="col">Key</th><th scope="col">Value</th></tr></thead>
<tbody>${Object.entries(fields).map(([key, value]) => html`<tr><td><code>${key}</code></td><td>${value}</td></tr>`)}</tbody></table></div>`;
}

function referrerGroups(name: string, groups: ReferrerGroup[]): Html {
  return html`<ul class="tree">${groups.map(
    (
      group,
    ) => html`<li><strong>${artifactLabel(group.artifactType)}</strong>${artifactLabel(group.artifactType) === group.artifactType ? '' : html` <code>${group.artifactType}</code>`}
    <ul class="tree">${group.referrers.map(
      (
        node,
      ) => html`<li><a href="${imageHref(name, node.descriptor.digest)}">${shortDigest(node.descriptor.digest)}</a> <span class="muted">${formatBytes(node.descriptor.size)}</span>
        ${node.children.length === 0 ? '' : referrerGroups(name, node.children)}</li>`,
    )}</ul></li>`,
  )}</ul>`;
}
