import { fsync as fsyncCallback, writev as writevCallback } from 'node:fs';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';

/** writev(2) on the thread pool; the bytes the kernel took. */
function writev(fd: number, buffers: Buffer[], position: number): Promise<number> {
  return new Promise((resolve, reject) => writevCallback(fd, buffers, position, (error, bytes) => (error === null ? resolve(bytes) : reject(error))));
}
/** fsync(2) on the thread pool: it waits for the disk, so it never runs on the event loop. */
export const fsyncFd = promisify(fsyncCallback);

// A write starts once this much has arrived (a 1 MiB blob goes out in one
// writev), and chunks arriving while it runs queue up to `maxQueuedBytes`
// and go out together: few thread-pool round trips, each one a context
// switch on a small machine.
const minWriteBytes = 1024 * 1024;
const maxQueuedBytes = 8 * 1024 * 1024;

/**
 * Writes everything `source` yields into the open file `fd` from
 * `position` on; the number of bytes written. One write is in flight at a
 * time; while it runs, at most `maxQueuedBytes` more are read (then the
 * source is no longer read, which holds back the socket behind it). When the
 * source fails, the write in flight is waited for before the error is
 * rethrown, so that the caller may cut the file back.
 */
export async function writeAt(fd: number, position: number, source: Readable, signal?: AbortSignal): Promise<number> {
  let queued: Buffer[] = [];
  let queuedBytes = 0;
  let written = 0;
  let inFlight: Promise<void> | undefined;
  // Set by a write that failed while the loop was reading; checked between chunks.
  const failure: { error?: unknown; failed: boolean } = { failed: false };
  const check = () => {
    if (failure.failed) throw failure.error;
  };
  const flush = () => {
    const buffers = queued;
    const at = position + written;
    written += queuedBytes;
    queued = [];
    queuedBytes = 0;
    inFlight = writeAll(fd, buffers, at).then(
      () => {
        inFlight = undefined;
      },
      (error: unknown) => {
        inFlight = undefined;
        if (!failure.failed) Object.assign(failure, { failed: true, error });
      },
    );
  };
  const onAbort = () => source.destroy(signal?.reason instanceof Error ? signal.reason : new Error('the upload was aborted'));
  signal?.throwIfAborted();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      check();
      queued.push(chunk);
      queuedBytes += chunk.length;
      if (inFlight === undefined && queuedBytes >= minWriteBytes) flush();
      else if (queuedBytes >= maxQueuedBytes) {
        await inFlight;
        check();
        flush();
      }
    }
    await inFlight;
    if (queuedBytes > 0) {
      flush();
      await inFlight;
    }
    check();
    return written;
  } catch (error) {
    await inFlight;
    throw error;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** One writev, continued when the kernel took only part of it. */
async function writeAll(fd: number, buffers: Buffer[], position: number): Promise<void> {
  let remaining = buffers;
  let at = position;
  while (remaining.length > 0) {
    const total = remaining.reduce((sum, buffer) => sum + buffer.length, 0);
    const wrote = await writev(fd, remaining, at);
    if (wrote === total) return;
    at += wrote;
    remaining = skip(remaining, wrote);
  }
}

function skip(buffers: Buffer[], bytes: number): Buffer[] {
  let left = bytes;
  let index = 0;
  while (index < buffers.length && left >= (buffers[index] as Buffer).length) left -= (buffers[index++] as Buffer).length;
  const rest = buffers.slice(index);
  if (left > 0 && rest.length > 0) rest[0] = (rest[0] as Buffer).subarray(left);
  return rest;
}
