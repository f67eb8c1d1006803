import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';
import type { FileRegion } from '../blobs/blob-store.ts';

const chunkBytes = 1024 * 1024;
/** Buffers kept for reuse between responses; more in use at once are allocated and dropped. */
const poolLimit = 8;
const pool: Buffer[] = [];

function takeBuffer(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(chunkBytes);
}

function giveBack(buffer: Buffer): void {
  if (pool.length < poolLimit) pool.push(buffer);
}

/**
 * Sends a file region as the response body, reading the next chunk while
 * the previous ones are written, into buffers reused once the socket has
 * taken them. A stream would allocate a buffer per chunk and leave the
 * garbage collector a gigabyte a second to free; measured on loopback this
 * sends a 512 MiB blob about twice as fast. Takes over the reply (status and
 * headers as set so far) and closes the region's file.
 */
export async function sendFileRegion(reply: FastifyReply, region: FileRegion, signal: AbortSignal): Promise<void> {
  reply.hijack();
  const response = reply.raw;
  try {
    response.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    await pump(response, region, signal);
    response.end();
  } catch (error) {
    // Headers are gone already: the only way left to say "incomplete" is to cut the connection.
    response.destroy(error instanceof Error ? error : new Error(String(error)));
  } finally {
    await region.handle.close().catch(() => undefined);
  }
}

async function pump(response: ServerResponse, region: FileRegion, signal: AbortSignal): Promise<void> {
  // Three buffers: one being read while up to two are with the socket.
  const writes: { done: Promise<void>; buffer: Buffer }[] = [];
  const spare: Buffer[] = [];
  const next = () => spare.pop() ?? takeBuffer();
  let position = region.start;
  // A socket closed under a write may never call that write back: stop on the abort instead.
  const aborted = new Promise<never>((_, reject) => {
    const stop = () => reject(signal.reason ?? new Error('client went away'));
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
  });
  aborted.catch(() => undefined);
  try {
    while (position <= region.end) {
      const buffer = next();
      const length = Math.min(buffer.length, region.end - position + 1);
      const { bytesRead } = await region.handle.read(buffer, 0, length, position);
      if (bytesRead === 0) throw new Error(`file ended at ${position}, before ${region.end + 1}`);
      position += bytesRead;
      const done = write(response, buffer.subarray(0, bytesRead));
      // Awaited below in order; a failure seen first elsewhere must not count as unhandled.
      done.catch(() => undefined);
      writes.push({ done, buffer });
      if (writes.length >= 2) {
        const oldest = writes.shift() as { done: Promise<void>; buffer: Buffer };
        await Promise.race([oldest.done, aborted]);
        spare.push(oldest.buffer);
      }
    }
    while (writes.length > 0) {
      const pending = writes.shift() as { done: Promise<void>; buffer: Buffer };
      await Promise.race([pending.done, aborted]);
      spare.push(pending.buffer);
    }
  } finally {
    // Buffers still with a failed socket may yet be read by it: they are left to the garbage collector.
    for (const buffer of spare) giveBack(buffer);
  }
}

function write(response: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    response.write(chunk, (error) => (error ? reject(error) : resolve()));
  });
}
