// A plain Node HTTP server that only receives upload bodies: the ceiling a
// Node registry's push cannot pass on this machine. Started by
// bench/servers.ts as `node bench/plain-receiver.ts PORT DIR`.
//
//   PUT /drop     the body is read and dropped
//   PUT /hash     the body is hashed with SHA-256
//   PUT /durable  the body is hashed and written to a new file, fsynced
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
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
