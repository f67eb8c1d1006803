/**
 * Reads a whole stream of at most `limit` bytes into memory (manifests,
 * token answers, error bodies), failing with `tooLarge()` as soon as more
 * arrive, so a misbehaving peer cannot make us buffer without bound.
 */
export async function readAtMost(source: AsyncIterable<Uint8Array>, limit: number, tooLarge: () => Error): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
