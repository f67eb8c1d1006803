import type { Segment } from './segments.ts';

/** S3's rules for multipart uploads (the same on every compatible store). */
export const s3Limits = {
  minPartBytes: 5 * 1024 * 1024,
  maxPartBytes: 5 * 1024 * 1024 * 1024,
  maxParts: 10_000,
  /** The largest object a single CopyObject can copy. */
  maxCopyObjectBytes: 5 * 1024 * 1024 * 1024,
} as const;

/** An inclusive byte range of one segment object. */
export interface Piece {
  key: string;
  start: number;
  end: number;
}

/** A part copied inside the store, or streamed through Berth from pieces of several segments. */
export type Part = { kind: 'copy'; piece: Piece } | { kind: 'stream'; pieces: Piece[]; length: number };

/**
 * How to assemble segments into one multipart object. S3 wants every part
 * but the last to hold at least 5 MiB, and chunks can be any size: small
 * chunks are gathered into streamed parts of `streamPartBytes`, while long
 * stretches of one segment are copied by the store itself (when it can:
 * `copy` false streams everything). Parts never exceed S3's limits.
 */
export function planParts(chain: readonly Segment[], options: { streamPartBytes: number; copy: boolean }): Part[] {
  const total = chain.reduce((sum, segment) => sum + segment.length, 0);
  const streamPartBytes = Math.min(s3Limits.maxPartBytes, Math.max(options.streamPartBytes, s3Limits.minPartBytes, Math.ceil(total / s3Limits.maxParts)));
  const parts: Part[] = [];
  let pending: Piece[] = [];
  let pendingLength = 0;
  const flush = () => {
    parts.push({ kind: 'stream', pieces: pending, length: pendingLength });
    pending = [];
    pendingLength = 0;
  };
  for (const segment of chain) {
    let position = 0;
    while (position < segment.length) {
      const left = segment.length - position;
      if (options.copy && pendingLength === 0 && left >= s3Limits.minPartBytes) {
        const take = Math.min(left, s3Limits.maxPartBytes);
        parts.push({ kind: 'copy', piece: { key: segment.key, start: position, end: position + take - 1 } });
        position += take;
        continue;
      }
      const take = Math.min(left, streamPartBytes - pendingLength);
      pending.push({ key: segment.key, start: position, end: position + take - 1 });
      pendingLength += take;
      position += take;
      if (pendingLength === streamPartBytes) flush();
    }
  }
  if (pendingLength > 0) flush();
  // Many large chunks can need more parts than S3 allows; streaming everything never does.
  if (parts.length > s3Limits.maxParts && options.copy) return planParts(chain, { ...options, copy: false });
  return parts;
}
