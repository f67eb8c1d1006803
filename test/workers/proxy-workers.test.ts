import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { pushToDistribution, startDistribution, type Distribution } from '../helpers/distribution.ts';
import { randomImage } from '../helpers/images.ts';
import type { BerthProcess } from '../helpers/process.ts';
import { startTwoWorkers } from './fresh-connections.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { RateLimiter } from '../proxy/rate-limiter.ts';

const accept = [mediaTypes.ociIndex, mediaTypes.ociManifest].join(', ');

/** A manifest GET on a connection of its own (any worker may take it): status and the worker that answered. */
function pull(base: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const sent = request(`${base}/v2/hub/team/${name}/manifests/1`, { agent: false, headers: { accept } }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    sent.on('error', reject).end();
  });
}

describe('a pull-through cache served by two workers', { skip: missingCommands('docker-registry') }, () => {
  let dir: { path: string; remove(): Promise<void> };
  let distribution: Distribution;
  let limiter: RateLimiter;
  let berth: BerthProcess & { url: string };

  before(async () => {
    dir = await tempDir('berth-proxy-workers');
    distribution = await startDistribution();
    limiter = await RateLimiter.start(distribution.url, 2);
    for (const name of ['a', 'b', 'c', 'd']) {
      const image = randomImage({ layers: 1, layerSize: 1024 });
      await pushToDistribution(distribution.url, `team/${name}`, '1', { blobs: [image.config, ...image.layers], manifest: image.manifest });
    }
    const config = { repositories: [{ prefix: 'hub/', kind: 'proxy', upstream: limiter.url, tagTtl: '0s', rateLimitReserve: 0 }] };
    berth = await startTwoWorkers(dir.path, config);
  });
  after(async () => {
    await berth?.stop();
    await limiter?.close();
    await distribution?.close();
    await dir?.remove();
  });

  it('after a 429 on one worker, no worker asks the upstream again before Retry-After', async () => {
    assert.equal(await pull(berth.url, 'a'), 200);
    assert.equal(await pull(berth.url, 'b'), 200);
    // Signatures and SBOMs are looked for in the background after each pull: let that finish.
    for (let seen = -1; seen !== limiter.requests.length; ) {
      seen = limiter.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.equal(await pull(berth.url, 'c'), 429, 'the limit of two manifest GETs is used up');
    const asked = limiter.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 10; i += 1) statuses.push(await pull(berth.url, i % 2 === 0 ? 'c' : 'd'));
    assert.deepEqual(statuses, Array(10).fill(429));
    assert.deepEqual(limiter.requests.slice(asked), [], 'the upstream heard nothing more, from either worker');
    const workers = new Set(
      berth.lines.filter((line) => line.includes('"msg":"request"') && line.includes('/v2/hub/team/')).map((line) => (JSON.parse(line) as { worker: number }).worker),
    );
    assert.deepEqual([...workers].sort(), [0, 1], 'both workers answered');
  });
});
