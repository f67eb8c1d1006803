import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planParts, s3Limits, type Part } from '../../src/blobs/s3/part-plan.ts';
import { resolveChain, type Segment } from '../../src/blobs/s3/segments.ts';
import { registryError } from '../helpers/stores.ts';

const mib = 1024 * 1024;
const gib = 1024 * mib;

function chainOf(lengths: number[]): Segment[] {
  let offset = 0;
  return lengths.map((length, index) => {
    const segment = { key: `s${index}`, offset, length, etag: `e${index}` };
    offset += length;
    return segment;
  });
}

/** Checks S3's rules and that the parts are exactly the chain's bytes, in order. */
function assertValidPlan(chain: Segment[], parts: Part[]): void {
  assert.ok(parts.length <= s3Limits.maxParts, `${parts.length} parts`);
  const pieces = parts.flatMap((part) => (part.kind === 'copy' ? [part.piece] : part.pieces));
  parts.forEach((part, index) => {
    const length = part.kind === 'copy' ? part.piece.end - part.piece.start + 1 : part.length;
    if (part.kind === 'stream')
      assert.equal(
        length,
        part.pieces.reduce((sum, piece) => sum + piece.end - piece.start + 1, 0),
      );
    assert.ok(length <= s3Limits.maxPartBytes, `part ${index + 1} is ${length} bytes`);
    if (index < parts.length - 1) assert.ok(length >= s3Limits.minPartBytes, `part ${index + 1} of ${parts.length} is only ${length} bytes`);
  });
  const expected = chain.map((segment) => ({ key: segment.key, start: 0, end: segment.length - 1 }));
  const merged: typeof expected = [];
  for (const piece of pieces) {
    const last = merged[merged.length - 1];
    if (last !== undefined && last.key === piece.key && last.end + 1 === piece.start) last.end = piece.end;
    else merged.push({ ...piece });
  }
  assert.deepEqual(merged, expected);
}

describe('assembling S3 multipart parts from chunks', () => {
  const cases: [string, number[]][] = [
    ['tiny chunks only', Array.from({ length: 50 }, () => 300 * 1024)],
    ['tiny chunks around large ones', [1, 6 * mib, 3, 5 * mib, 10, 12 * mib + 5, 4 * mib]],
    ['a chunk beyond the 5 GiB part maximum', [100, 11 * gib + 17, 2 * mib]],
    ['large chunks only', [5 * mib, 5 * mib, 5 * mib + 1]],
    ['one byte then exactly the minimum', [1, 5 * mib]],
  ];
  for (const [name, lengths] of cases) {
    for (const copy of [true, false]) {
      it(`${name}, ${copy ? 'copying inside the store' : 'streaming everything'}`, () => {
        const chain = chainOf(lengths);
        const parts = planParts(chain, { streamPartBytes: 8 * mib, copy });
        assertValidPlan(chain, parts);
        if (!copy) assert.ok(parts.every((part) => part.kind === 'stream'));
      });
    }
  }

  it('copies long stretches inside the store instead of streaming them', () => {
    const parts = planParts(chainOf([1024, 64 * mib]), { streamPartBytes: 8 * mib, copy: true });
    const streamed = parts.filter((part) => part.kind === 'stream').reduce((sum, part) => sum + (part.kind === 'stream' ? part.length : 0), 0);
    assert.equal(streamed, 8 * mib, 'only one part is streamed, to top up the small chunk');
  });

  it('stays within 10,000 parts for many tiny chunks of a huge blob', () => {
    const chain = chainOf(Array.from({ length: 20_000 }, () => 5 * mib));
    const parts = planParts(chain, { streamPartBytes: 5 * mib, copy: true });
    assertValidPlan(chain, parts);
  });
});

describe('resolving an upload from its segments', () => {
  const segment = (offset: number, length: number, etag = `${offset}-${length}`): Segment => ({ key: `k${offset}-${length}-${etag}`, offset, length, etag });

  it('takes the one chain that reaches the recorded size, ignoring stray segments', () => {
    const segments = [segment(0, 10), segment(10, 5), segment(15, 7), segment(10, 3)];
    assert.deepEqual(
      resolveChain(segments, 15).map((s) => s.key),
      ['k0-10-0-10', 'k10-5-10-5'],
    );
    assert.deepEqual(
      resolveChain(segments, 22).map((s) => s.length),
      [10, 5, 7],
    );
    assert.deepEqual(resolveChain(segments, 0), []);
  });

  it('takes the longest chain when no size is given', () => {
    assert.deepEqual(
      resolveChain([segment(0, 4), segment(4, 4), segment(20, 1)]).map((s) => s.offset),
      [0, 4],
    );
    assert.deepEqual(resolveChain([]), []);
  });

  it('treats the same chunk stored twice (a retry through another replica) as one', () => {
    const chain = resolveChain([segment(0, 8, 'same'), { ...segment(0, 8, 'same'), key: 'retry' }, segment(8, 2)], 10);
    assert.equal(chain.length, 2);
  });

  it('refuses an upload that two different contents could have made', () => {
    assert.throws(() => resolveChain([segment(0, 8, 'one'), segment(0, 8, 'two')], 8), registryError('BLOB_UPLOAD_INVALID'));
    assert.throws(() => resolveChain([segment(0, 3), segment(3, 5), segment(0, 8)], 8), registryError('BLOB_UPLOAD_INVALID'));
  });

  it('refuses a size the segments do not reach', () => {
    assert.throws(() => resolveChain([segment(0, 4)], 5), registryError('BLOB_UPLOAD_INVALID'));
    assert.throws(() => resolveChain([segment(0, 4), segment(5, 4)], 9), registryError('BLOB_UPLOAD_INVALID'));
  });
});
