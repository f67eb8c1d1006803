// A plain Node HTTP server that only receives upload bodies: the ceiling a
// Node registry's push cannot pass on this machine. Started by
// bench/servers.ts as `node bench/plain-receiver.ts PORT DIR`.
//
//   PUT /drop     the body is read and dropped
//   PUT /hash     the body is hashed with SHA-256
//   PUT /durable  the body is hashed and written to a new file, fsynced
//                 (a write stream behind stream.pipeline: the usual way)
//   PUT /batched  the same, with writes of at least 1 MiB at known offsets
//                 and one in flight at a time (the way Berth's fs driver writes)
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const [port, dir] = process.argv.slice(2) as [string, string];
let files = 0;

async function receive(mode: string, request: IncomingMessage): Promise<string> {
  const hash = createHash('sha256');
  if (mode === '/drop') {
    for await (const chunk of request) void chunk;
    return '';
  }
  if (mode === '/hash') {
    for await (const chunk of request) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }
  const path = join(dir, `received-${files++}`);
  if (mode === '/batched') {
    const handle = await open(path, 'wx');
    try {
      await writeBatched(handle, request, (chunk) => hash.update(chunk));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rm(path);
    return hash.digest('hex');
  }
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(request, hashing, createWriteStream(path, { highWaterMark: 8 * 2 ** 20 }));
  const handle = await open(path, 'r');
  await handle.sync();
  await handle.close();
  await rm(path);
  return hash.digest('hex');
}

/** Writes of at least 1 MiB, one in flight, up to 8 MiB more read meanwhile. */
async function writeBatched(handle: FileHandle, request: IncomingMessage, each: (chunk: Buffer) => void): Promise<void> {
  let queued: Buffer[] = [];
  let bytes = 0;
  let position = 0;
  let writing: Promise<unknown> = Promise.resolve();
  let busy = false;
  const flush = () => {
    const buffers = queued;
    const at = position;
    position += bytes;
    queued = [];
    bytes = 0;
    busy = true;
    writing = handle.writev(buffers, at).finally(() => {
      busy = false;
    });
  };
  for await (const chunk of request as AsyncIterable<Buffer>) {
    each(chunk);
    queued.push(chunk);
    bytes += chunk.length;
    if (!busy && bytes >= 2 ** 20) flush();
    else if (bytes >= 8 * 2 ** 20) {
      await writing;
      flush();
    }
  }
  await writing;
  if (bytes > 0) flush();
  await writing;
}

createServer((request, response) => {
  if (request.method !== 'PUT') {
    response.end();
    return;
  }
  receive(request.url ?? '', request).then(
    (digest) => response.writeHead(201, { 'x-digest': digest }).end(),
    (error: unknown) => response.writeHead(500).end(String(error)),
  );
}).listen(Number(port), '127.0.0.1');
