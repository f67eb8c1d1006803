import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { isRegistryError } from '../../src/errors/registry-error.ts';
import { type MeteredStream, VerifiedBlobStream } from '../../src/io/metered-stream.ts';
import { digestOf } from '../../src/oci/digest.ts';

/** Runs `chunks` through `stage`; what came out, or the error the stream failed with. */
async function run(chunks: Buffer[], stage: MeteredStream): Promise<{ out: Buffer; error?: unknown }> {
  const out: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.push(chunk);
      done();
    },
  });
  try {
    await pipeline(Readable.from(chunks), stage, sink);
    return { out: Buffer.concat(out) };
  } catch (error) {
    return { out: Buffer.concat(out), error };
  }
}

const blob = Buffer.from('the bytes of a layer, in two chunks');
const halves = [blob.subarray(0, 10), blob.subarray(10)];

describe('a blob verified while it streams', () => {
  it('passes the bytes through and tells the progress when size and digest match', async () => {
    const progress: number[] = [];
    const { out, error } = await run(halves, new VerifiedBlobStream({ digest: digestOf(blob), size: blob.length }, 'layer', (bytes) => progress.push(bytes)));
    assert.equal(error, undefined);
    assert.deepEqual(out, blob);
    assert.deepEqual(progress, [10, blob.length]);
  });

  it('fails DIGEST_INVALID, naming both digests, when the content differs', async () => {
    const other = Buffer.from(blob);
    other[3] = 0x21;
    const { error } = await run([other], new VerifiedBlobStream({ digest: digestOf(blob), size: blob.length }, 'layer'));
    assert.ok(isRegistryError(error));
    assert.equal(error.code, 'DIGEST_INVALID');
    assert.match(error.message, new RegExp(`layer ${digestOf(blob)}: the source sent content with digest ${digestOf(other)}`));
  });

  it('fails SIZE_INVALID when fewer or more bytes come than the descriptor says', async () => {
    const short = await run([blob.subarray(0, 5)], new VerifiedBlobStream({ digest: digestOf(blob), size: blob.length }, 'layer'));
    assert.ok(isRegistryError(short.error));
    assert.equal(short.error.code, 'SIZE_INVALID');
    const long = await run([blob, Buffer.from('more')], new VerifiedBlobStream({ digest: digestOf(blob), size: blob.length }, 'layer'));
    assert.ok(isRegistryError(long.error));
    assert.equal(long.error.code, 'SIZE_INVALID');
    assert.ok(long.out.length <= blob.length, 'nothing past the declared size passes');
  });
});
