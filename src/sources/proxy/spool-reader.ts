import { Readable } from 'node:stream';
import type { BlobFill } from './blob-fill.ts';

const chunkBytes = 256 * 1024;

/**
 * Follows a BlobFill's spool from `start` to `end` (inclusive): reads what
 * has arrived, waits for more, ends at `end`, and fails when the fill does.
 * Buffering is bounded by the stream's high-water mark.
 */
export class SpoolReader extends Readable {
  readonly #fill: BlobFill;
  readonly #end: number;
  readonly #release: () => void;
  #position: number;
  #pumping = false;
  #released = false;

  constructor(fill: BlobFill, start: number, end: number, release: () => void) {
    super({ highWaterMark: 1024 * 1024 });
    this.#fill = fill;
    this.#position = start;
    this.#end = end;
    this.#release = release;
  }

  override _read(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#pump().then(
      () => {
        this.#pumping = false;
      },
      (error: unknown) => {
        this.#pumping = false;
        this.destroy(error as Error);
      },
    );
  }

  /** Pushes until the consumer is full, the range is done, or nothing new has arrived yet. */
  async #pump(): Promise<void> {
    for (;;) {
      if (this.destroyed) return;
      if (this.#position > this.#end) {
        this.push(null);
        return;
      }
      const failure = this.#fill.failure;
      if (failure !== undefined) throw failure;
      const available = Math.min(this.#fill.readable, this.#end + 1);
      const spool = this.#fill.spool;
      if (this.#position < available && spool !== undefined) {
        const length = Math.min(chunkBytes, available - this.#position);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await spool.read(buffer, 0, length, this.#position);
        this.#position += bytesRead;
        if (!this.push(buffer.subarray(0, bytesRead))) return;
        continue;
      }
      await this.#fill.changed();
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#released) {
      this.#released = true;
      this.#release();
    }
    callback(error);
  }
}
