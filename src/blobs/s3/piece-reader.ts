import type { Readable } from 'node:stream';
import type { Piece } from './part-plan.ts';

/** Limits on reading ahead: how many small pieces are fetched at once, and how many bytes they may hold. */
export interface ReadAhead {
  /** Pieces up to this length are fetched ahead into memory; longer ones stream in their turn. */
  smallPieceBytes: number;
  maxRequests: number;
  maxBytes: number;
}

export const defaultReadAhead: ReadAhead = { smallPieceBytes: 1024 * 1024, maxRequests: 64, maxBytes: 8 * 1024 * 1024 };

/**
 * The bytes of `pieces` in order. Each piece is one ranged GET; a commit of
 * a thousand small chunks would otherwise wait for a thousand round trips
 * one after the other, so small pieces are fetched several at a time ahead
 * of the reader, within `limits`. Memory stays bounded: at most `maxBytes`
 * of small pieces, and large pieces stream without buffering.
 */
export async function* readPieces(pieces: readonly Piece[], fetchPiece: (piece: Piece) => Promise<Readable>, limits: ReadAhead = defaultReadAhead): AsyncGenerator<Buffer> {
  const lengthOf = (piece: Piece) => piece.end - piece.start + 1;
  const ahead: { length: number; bytes: Promise<Buffer> }[] = [];
  let aheadBytes = 0;
  let next = 0;
  const fill = () => {
    while (next < pieces.length && ahead.length < limits.maxRequests) {
      const piece = pieces[next] as Piece;
      const length = lengthOf(piece);
      if (length > limits.smallPieceBytes || (ahead.length > 0 && aheadBytes + length > limits.maxBytes)) return;
      const bytes = fetchPiece(piece).then(collect);
      // Rejections surface when the reader reaches the piece; until then they are not unhandled.
      bytes.catch(() => undefined);
      ahead.push({ length, bytes });
      aheadBytes += length;
      next++;
    }
  };
  try {
    while (next < pieces.length || ahead.length > 0) {
      fill();
      const first = ahead.shift();
      if (first !== undefined) {
        const bytes = await first.bytes;
        aheadBytes -= first.length;
        fill();
        yield bytes;
        continue;
      }
      // A large piece: everything before it has been read; stream it.
      const piece = pieces[next++] as Piece;
      yield* (await fetchPiece(piece)) as AsyncIterable<Buffer>;
    }
  } finally {
    ahead.length = 0;
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
