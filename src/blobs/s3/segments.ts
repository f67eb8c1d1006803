import { RegistryError } from '../../errors/registry-error.ts';

/** One append's bytes, stored as its own object. */
export interface Segment {
  key: string;
  offset: number;
  length: number;
  /** Equal ETags mean equal bytes (a chunk retried through another replica). */
  etag: string;
}

/**
 * The segments that make up an upload's first `size` bytes, in order.
 *
 * Appends never overwrite: each writes a new object named by its offset and
 * a random suffix, and the MetaStore decides which append counted. Stray
 * segments (an append that lost that race, or whose process died) are left
 * behind, so the upload is the one chain of segments from 0 to the size
 * the MetaStore recorded. Two different chains mean two different contents
 * could be meant: that upload cannot be trusted and is refused.
 *
 * Without `size`, the longest chain is taken.
 */
export function resolveChain(segments: readonly Segment[], size?: number): Segment[] {
  const byOffset = new Map<number, Segment[]>();
  for (const segment of segments) {
    if (segment.length === 0) continue;
    const candidates = byOffset.get(segment.offset) ?? [];
    if (!candidates.some((other) => other.length === segment.length && other.etag === segment.etag)) candidates.push(segment);
    byOffset.set(segment.offset, candidates);
  }
  const target = size ?? longestReach(byOffset);
  if (target === 0) return [];
  // Paths from each offset to the target, counted up to 2 (enough to see ambiguity).
  const paths = new Map<number, number>([[target, 1]]);
  const offsets = [...byOffset.keys()].filter((offset) => offset < target).sort((a, b) => b - a);
  for (const offset of offsets) {
    let count = 0;
    for (const candidate of byOffset.get(offset) ?? []) count += paths.get(offset + candidate.length) ?? 0;
    paths.set(offset, Math.min(count, 2));
  }
  const fromStart = paths.get(0) ?? 0;
  if (fromStart === 0) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', `the upload does not hold ${target} bytes`, { detail: { size: target } });
  }
  if (fromStart > 1) {
    throw new RegistryError('BLOB_UPLOAD_INVALID', 'the upload received conflicting chunks from concurrent requests; start it again', {
      detail: { size: target },
    });
  }
  const chain: Segment[] = [];
  for (let offset = 0; offset < target; ) {
    const next = (byOffset.get(offset) ?? []).find((candidate) => (paths.get(offset + candidate.length) ?? 0) > 0) as Segment;
    chain.push(next);
    offset += next.length;
  }
  return chain;
}

/** The furthest offset reachable from 0 by consecutive segments. */
function longestReach(byOffset: Map<number, Segment[]>): number {
  const reachable = new Set([0]);
  let furthest = 0;
  for (const offset of [...byOffset.keys()].sort((a, b) => a - b)) {
    if (!reachable.has(offset)) continue;
    for (const candidate of byOffset.get(offset) ?? []) {
      reachable.add(offset + candidate.length);
      furthest = Math.max(furthest, offset + candidate.length);
    }
  }
  return furthest;
}
