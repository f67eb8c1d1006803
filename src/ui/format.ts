import type { Digest } from '../oci/digest.ts';
import { formatBytes } from '../policy/quotas.ts';
import { html, type Html } from './html.ts';

export { formatBytes };

/** `sha256:0123456789ab`: enough to tell digests apart on a page. */
export function shortDigest(digest: Digest | string): string {
  const colon = digest.indexOf(':');
  return digest.slice(0, colon + 13);
}

/** A time as "3 minutes ago" in a <time> element carrying the exact instant. */
export function timeAgo(at: Date | undefined, now = Date.now()): Html {
  if (at === undefined) return html`<span class="muted">never</span>`;
  return html`<time datetime="${at.toISOString()}" title="${at.toISOString()}">${relative(at.getTime(), now)}</time>`;
}

export function relative(at: number, now = Date.now()): string {
  const seconds = Math.round((now - at) / 1000);
  const future = seconds < 0;
  const size = Math.abs(seconds);
  const units: [number, string][] = [
    [86400 * 365, 'year'],
    [86400 * 30, 'month'],
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
  ];
  if (size < 45) return future ? 'in a moment' : 'just now';
  for (const [length, unit] of units) {
    if (size >= length) {
      const count = Math.round(size / length);
      const text = `${count} ${unit}${count === 1 ? '' : 's'}`;
      return future ? `in ${text}` : `${text} ago`;
    }
  }
  return future ? 'in a minute' : 'a minute ago';
}

/** A digest shown short, with a button copying all of it. */
export function copyableDigest(digest: Digest | string, label = 'Copy digest'): Html {
  return html`<span class="digest"><code title="${digest}">${shortDigest(digest)}</code> ${copyButton(digest, label)}</span>`;
}

export function copyButton(text: string, label: string): Html {
  return html`<button type="button" class="copy" data-copy="${text}" aria-label="${label}" title="${label}">Copy</button>`;
}

/** Media types shown without their long common prefixes. */
export function shortMediaType(mediaType: string): string {
  const known: Record<string, string> = {
    'application/vnd.oci.image.manifest.v1+json': 'OCI image',
    'application/vnd.oci.image.index.v1+json': 'OCI index',
    'application/vnd.docker.distribution.manifest.v2+json': 'Docker image',
    'application/vnd.docker.distribution.manifest.list.v2+json': 'Docker manifest list',
  };
  return known[mediaType] ?? mediaType;
}
