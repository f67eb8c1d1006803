import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { startBerthServer, type BerthProcess } from '../helpers/process.ts';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** `berth serve --workers 2` with `config` written to DIR/berth.yaml and its data in DIR/data. */
export async function startTwoWorkers(dir: string, config: object): Promise<BerthProcess & { url: string }> {
  await writeFile(join(dir, 'berth.yaml'), stringify(config));
  return startBerthServer(['--data', join(dir, 'data'), '--config', join(dir, 'berth.yaml'), '--workers', '2']);
}

/** One request on a connection of its own, so the kernel may hand it to any worker. */
export function fresh(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sent = request(
      `${base}${path}`,
      { method, agent: false, headers: { ...options.headers, ...(options.body === undefined ? {} : { 'content-length': String(options.body.length) }) } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      },
    );
    sent.on('error', reject);
    sent.end(options.body);
  });
}

/** The workers that wrote access-log lines for paths containing `fragment`. */
export function workersServing(berth: BerthProcess, fragment: string): Set<number> {
  const workers = new Set<number>();
  for (const line of berth.lines) {
    if (!line.includes('"msg":"request"') || !line.includes(fragment)) continue;
    workers.add((JSON.parse(line) as { worker: number }).worker);
  }
  return workers;
}

/**
 * `rounds` uploads in three chunks, every request on a connection of its
 * own, each checked by reading the blob back; how many of them moved
 * between workers mid-way.
 */
export async function chunkedUploads(berth: BerthProcess & { url: string }, repository: string, headers: Record<string, string>, rounds: number): Promise<number> {
  let crossed = 0;
  for (let round = 0; round < rounds; round += 1) {
    const chunks = [randomBytes(3000), randomBytes(2000), randomBytes(1000)];
    const digest = `sha256:${createHash('sha256').update(Buffer.concat(chunks)).digest('hex')}`;
    const started = await fresh(berth.url, 'POST', `/v2/${repository}/blobs/uploads/`, { headers });
    assert.equal(started.status, 202);
    let location = started.headers['location'] as string;
    const id = location.split('/').pop()?.split('?')[0] as string;
    let offset = 0;
    for (const chunk of chunks) {
      const patched = await fresh(berth.url, 'PATCH', location, {
        headers: { ...headers, 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      });
      assert.equal(patched.status, 202, patched.body.toString());
      offset += chunk.length;
      location = patched.headers['location'] as string;
    }
    const done = await fresh(berth.url, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { headers });
    assert.equal(done.status, 201, done.body.toString());
    const read = await fresh(berth.url, 'GET', `/v2/${repository}/blobs/${digest}`, { headers });
    // An object store may be sent to directly (a presigned redirect).
    const bytes = read.status === 307 ? Buffer.from(await (await fetch(read.headers['location'] as string)).arrayBuffer()) : read.body;
    assert.deepEqual(bytes, Buffer.concat(chunks));
    if (workersServing(berth, id).size === 2) crossed += 1;
  }
  return crossed;
}
