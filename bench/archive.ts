// Archive benchmark: how long indexing a directory of 1,000 archives takes,
// and blob GET throughput from an archive (byte range of a tar, and a gzip
// archive extracted to the store) side by side with the same blob served by
// the hosted store, in one run on one machine.
//
//   npx node bench/archive.ts [--archives 1000] [--blob-mib 16] [--seconds 5] [--connections 8]

import { Agent, get } from 'node:http';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { pino } from 'pino';
import { FsBlobStore } from '../src/blobs/fs/fs-blob-store.ts';
import { loadConfig } from '../src/config/load.ts';
import { silentLogger } from '../src/log.ts';
import { startServer } from '../src/server.ts';
import { ArchiveSource } from '../src/sources/archive/archive-source.ts';
import { pushImage, randomImage } from '../test/helpers/images.ts';
import { tempDir } from '../test/helpers/tmp.ts';
import { writeDockerArchive, writeOciArchive } from '../test/sources/archive/fixtures.ts';

export interface ArchiveBenchOptions {
  archives: number;
  blobBytes: number;
  seconds: number;
  connections: number;
}

export interface Throughput {
  requests: number;
  requestsPerSecond: number;
  mebibytesPerSecond: number;
}

export interface ArchiveBenchResult {
  indexing: { archives: number; failed: number; coldMs: number; warmRescanMs: number };
  blobGet: { blobBytes: number; connections: number; archiveTar: Throughput; archiveGzip: Throughput; hosted: Throughput };
}

export const defaultArchiveBenchOptions: ArchiveBenchOptions = { archives: 1000, blobBytes: 16 * 1024 * 1024, seconds: 5, connections: 8 };

export async function benchArchive(options: ArchiveBenchOptions = defaultArchiveBenchOptions): Promise<ArchiveBenchResult> {
  const work = await tempDir('berth-bench-archive');
  try {
    return { indexing: await benchIndexing(join(work.path, 'many'), join(work.path, 'index-store'), options), blobGet: await benchBlobGet(work.path, options) };
  } finally {
    await work.remove();
  }
}

/** Cold: a fresh source scanning and indexing every archive. Warm: a rescan where nothing changed (what the periodic rescan costs). */
async function benchIndexing(directory: string, storeDir: string, options: ArchiveBenchOptions): Promise<ArchiveBenchResult['indexing']> {
  for (let n = 0; n < options.archives; n++) {
    const image = randomImage({ layers: 3, layerSize: 32 * 1024 });
    const path = join(directory, `team${n % 20}`, `app${n}`);
    // One in ten is a Docker archive, whose layers must be hashed while indexing.
    if (n % 10 === 9) await writeDockerArchive(`${path}.tar`, image, [`app${n}:1.0`]);
    else await writeOciArchive(`${path}.oci`, [{ image, tags: ['1.0', 'latest'] }]);
  }
  const store = await FsBlobStore.open(storeDir);
  const started = performance.now();
  const source = new ArchiveSource({ prefix: '', directory, rescanInterval: 0, watch: false, maxManifestBytes: 4 * 1024 * 1024 }, store, silentLogger);
  const cold = await source.scanned();
  const coldMs = performance.now() - started;
  const warmStarted = performance.now();
  await source.rescan();
  const warmRescanMs = performance.now() - warmStarted;
  await source.close();
  return { archives: cold.archives, failed: cold.failed, coldMs: Math.round(coldMs), warmRescanMs: Math.round(warmRescanMs) };
}

async function benchBlobGet(work: string, options: ArchiveBenchOptions): Promise<ArchiveBenchResult['blobGet']> {
  const image = randomImage({ layers: 1, layerSize: options.blobBytes });
  const archives = join(work, 'served');
  await writeOciArchive(join(archives, 'img.oci'), [{ image, tags: ['1'] }]);
  await writeOciArchive(join(archives, 'zipped.oci.gz'), [{ image, tags: ['1'] }], { gzip: true });
  const config = await loadConfig({
    env: {},
    overrides: {
      listen: '127.0.0.1:0',
      dataDir: join(work, 'data'),
      'log.level': 'silent',
      repositories: [{ prefix: 'archive/', kind: 'archive', directory: archives, watch: false, rescanInterval: 0 }],
    },
  });
  const server = await startServer(config, pino({ level: 'silent' }));
  try {
    const base = `http://${server.address}`;
    await pushImage(base, 'hosted/img', '1', image);
    const digest = image.layers[0]?.digest;
    const blobUrl = (name: string) => `${base}/v2/${name}/blobs/${digest}`;
    // Warm every path once (indexes, the gzip extraction, page cache) before measuring.
    for (const name of ['archive/img', 'archive/zipped', 'hosted/img']) await measureGets(blobUrl(name), 1, 0);
    const run = (name: string) => measureGets(blobUrl(name), options.connections, options.seconds * 1000);
    return {
      blobBytes: options.blobBytes,
      connections: options.connections,
      archiveTar: await run('archive/img'),
      archiveGzip: await run('archive/zipped'),
      hosted: await run('hosted/img'),
    };
  } finally {
    await server.close();
  }
}

/** `connections` clients GETting `url` back to back for `durationMs` (at least one request each), bodies read and dropped. */
async function measureGets(url: string, connections: number, durationMs: number): Promise<Throughput> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let requests = 0;
  let bytes = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  const once = () =>
    new Promise<void>((resolve, reject) => {
      get(url, { agent }, (response) => {
        if (response.statusCode !== 200) reject(new Error(`GET ${url}: ${response.statusCode}`));
        response.on('data', (chunk: Buffer) => (bytes += chunk.length));
        response.on('end', () => resolve());
        response.on('error', reject);
      }).on('error', reject);
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      do {
        await once();
        requests++;
      } while (performance.now() < deadline);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { requests, requestsPerSecond: round(requests / seconds), mebibytesPerSecond: round(bytes / seconds / 1024 / 1024) };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { archives: { type: 'string' }, 'blob-mib': { type: 'string' }, seconds: { type: 'string' }, connections: { type: 'string' } },
  });
  const result = await benchArchive({
    archives: Number(values.archives ?? defaultArchiveBenchOptions.archives),
    blobBytes: Number(values['blob-mib'] ?? defaultArchiveBenchOptions.blobBytes / 1024 / 1024) * 1024 * 1024,
    seconds: Number(values.seconds ?? defaultArchiveBenchOptions.seconds),
    connections: Number(values.connections ?? defaultArchiveBenchOptions.connections),
  });
  const { indexing, blobGet } = result;
  console.log(`indexing: ${indexing.archives} archives (${indexing.failed} failed) in ${indexing.coldMs} ms cold; rescan with nothing changed ${indexing.warmRescanMs} ms`);
  console.log(`blob GET, ${blobGet.blobBytes / 1024 / 1024} MiB blob, ${blobGet.connections} connections:`);
  for (const [label, value] of [
    ['archive (tar byte range)', blobGet.archiveTar],
    ['archive (gzip, extracted)', blobGet.archiveGzip],
    ['hosted store', blobGet.hosted],
  ] as const) {
    console.log(`  ${label.padEnd(26)} ${String(value.requestsPerSecond).padStart(8)} req/s ${String(value.mebibytesPerSecond).padStart(9)} MiB/s  (${value.requests} requests)`);
  }
}
