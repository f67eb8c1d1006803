import type { Writable } from 'node:stream';
import type { CopyEvent } from './copy-image.ts';

/** What `berth copy` and `berth sync` report besides blob events. */
export type ReportEvent =
  | CopyEvent
  | { event: 'image-started'; source: string; destination: string }
  | {
      event: 'image-copied';
      source: string;
      destination: string;
      digest: string;
      mediaType?: string;
      copied: number;
      mounted: number;
      skipped: number;
      bytes: number;
      imageId?: string;
      referrers?: number;
    }
  | { event: 'image-present'; source: string; destination: string; imageId: string; tagged: boolean }
  | { event: 'image-up-to-date'; source: string; destination: string; digest: string }
  | { event: 'image-failed'; source: string; destination: string; code: string; message: string; exitCode: number }
  | { event: 'sync-done'; images: number; copied: number; upToDate: number; failed: number }
  | { event: 'mirror-done'; repositories: number; synced: number; failed: number };

export interface Reporter {
  report(event: ReportEvent): void;
  close(): void;
}

/**
 * `json`: one JSON object per line on `out`, except byte-level progress.
 * `tty`: a live line per blob in transfer on `err`, and a line per finished
 * blob and image above them. `none`: nothing but failures on `err`.
 */
export function createReporter(mode: 'json' | 'tty' | 'none', out: Writable, err: Writable): Reporter {
  if (mode === 'json') {
    return {
      report(event) {
        if (event.event !== 'blob-progress') out.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
      },
      close() {},
    };
  }
  if (mode === 'none') {
    return {
      report(event) {
        if (event.event === 'image-failed') err.write(`berth: ${event.source} → ${event.destination}: ${event.message}\n`);
      },
      close() {},
    };
  }
  return new TerminalReporter(err);
}

interface Transfer {
  size: number;
  bytes: number;
}

const barWidth = 30;
const redrawIntervalMs = 100;

class TerminalReporter implements Reporter {
  readonly #out: Writable;
  readonly #active = new Map<string, Transfer>();
  #drawnLines = 0;
  #lastDraw = 0;

  constructor(out: Writable) {
    this.#out = out;
  }

  report(event: ReportEvent): void {
    switch (event.event) {
      case 'blob-started':
        this.#active.set(event.digest, { size: event.size, bytes: 0 });
        break;
      case 'blob-progress': {
        const transfer = this.#active.get(event.digest);
        if (transfer !== undefined) transfer.bytes = event.bytes;
        if (Date.now() - this.#lastDraw < redrawIntervalMs) return;
        break;
      }
      case 'blob-copied':
        this.#active.delete(event.digest);
        this.#line(`${event.mounted ? 'mounted' : 'copied '} ${short(event.digest)} ${formatBytes(event.size)}`);
        break;
      case 'blob-skipped':
        this.#line(`exists  ${short(event.digest)} ${formatBytes(event.size)}${event.reason === 'foreign' ? ' (foreign layer, not copied)' : ''}`);
        break;
      case 'layer-recompressed':
        this.#line(`${event.compression.padEnd(7)} ${short(event.from)} → ${short(event.digest)} ${formatBytes(event.size)}`);
        break;
      case 'platform-selected':
        this.#line(`platform ${event.platform} (${short(event.digest)})`);
        break;
      case 'manifest-written':
        this.#line(`manifest ${short(event.digest)}${event.tag === undefined ? '' : ` tagged ${event.tag}`}`);
        break;
      case 'referrer-copied':
        this.#line(`referrer ${short(event.digest)} of ${short(event.subject)}${event.tag === undefined ? '' : ` tagged ${event.tag}`}`);
        break;
      case 'image-started':
        this.#line(`copying ${event.source} → ${event.destination}`);
        break;
      case 'image-copied':
        this.#line(
          `done    ${event.destination} ${short(event.digest)}: ${event.copied} copied (${formatBytes(event.bytes)}), ${event.mounted} mounted, ${event.skipped} already there`,
        );
        break;
      case 'image-present':
        this.#line(`present ${event.destination}: the daemon has image ${short(event.imageId)}${event.tagged ? ' (tagged now)' : ''}; nothing loaded`);
        break;
      case 'image-up-to-date':
        this.#line(`current ${event.destination} ${short(event.digest)}`);
        break;
      case 'image-failed':
        this.#line(`FAILED  ${event.source} → ${event.destination}: ${event.message}`);
        break;
      case 'sync-done':
        this.#line(`sync: ${event.images} images, ${event.copied} copied, ${event.upToDate} up to date, ${event.failed} failed`);
        break;
      case 'mirror-done':
        this.#line(`mirror: ${event.repositories} repositories, ${event.synced} synced, ${event.failed} failed`);
        break;
    }
    this.#draw();
  }

  close(): void {
    this.#active.clear();
    this.#draw();
  }

  /** A permanent line, written above the live transfer lines. */
  #line(text: string): void {
    this.#clear();
    this.#out.write(`${text}\n`);
  }

  #clear(): void {
    if (this.#drawnLines > 0) this.#out.write(`\x1b[${this.#drawnLines}F\x1b[J`);
    this.#drawnLines = 0;
  }

  #draw(): void {
    this.#clear();
    for (const [digest, transfer] of this.#active) {
      const ratio = transfer.size === 0 ? 1 : Math.min(1, transfer.bytes / transfer.size);
      const filled = Math.round(ratio * barWidth);
      this.#out.write(`${short(digest)} [${'='.repeat(filled)}${' '.repeat(barWidth - filled)}] ${formatBytes(transfer.bytes)}/${formatBytes(transfer.size)}\n`);
      this.#drawnLines += 1;
    }
    this.#lastDraw = Date.now();
  }
}

function short(digest: string): string {
  return digest.slice(0, 19);
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
