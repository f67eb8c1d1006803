import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { eventually } from '../helpers/eventually.ts';
import { call } from '../helpers/http.ts';
import { blobOf, pushBlob, pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry } from '../helpers/registry.ts';
import { randomBytes } from 'node:crypto';

// On the embedded store `berth serve` runs its scheduled passes in threads of their own
// (src/passes-in-threads.ts): what a pass does, and what it counts, is the same as in process.
describe('scheduled passes on the embedded store', () => {
  it('collect garbage on schedule, counted in the served metrics', async () => {
    const registry = await startTestRegistry({ 'gc.interval': '1s', 'gc.gracePeriod': 0 });
    try {
      const loose = blobOf(randomBytes(300));
      await pushBlob(registry.url, 'scheduled/app', loose);
      assert.equal((await call(registry.url, 'HEAD', `/v2/scheduled/app/blobs/${loose.digest}`)).status, 200);
      await eventually(async () => (await call(registry.url, 'HEAD', `/v2/scheduled/app/blobs/${loose.digest}`)).status === 404, {
        what: 'the unreferenced blob to be collected',
        timeout: 20_000,
      });
      const metrics = await eventually(async () => {
        const text = (await call(registry.url, 'GET', '/metrics')).text;
        return /^berth_gc_runs_total\{result="ok"\} [1-9]/m.test(text) && text;
      });
      assert.match(metrics, /^berth_gc_deleted_total\{kind="link"\} [1-9]/m);
    } finally {
      await registry.close();
    }
  });

  it('apply retention on schedule, counted in the served metrics', async () => {
    const registry = await startTestRegistry({
      'gc.interval': 0,
      retention: { interval: '1s', policies: [{ repositories: ['kept/**'], keepLatest: 1 }] },
    });
    try {
      await pushImage(registry.url, 'kept/app', 'old', randomImage({ layers: 1 }));
      await new Promise((resolve) => setTimeout(resolve, 5));
      await pushImage(registry.url, 'kept/app', 'new', randomImage({ layers: 1 }));
      await eventually(
        async () => {
          const tags = (await call(registry.url, 'GET', '/v2/kept/app/tags/list')).json<{ tags: string[] }>().tags;
          assert.deepEqual(tags, ['new']);
        },
        { timeout: 20_000 },
      );
      await eventually(async () => /^berth_retention_deleted_total\{kind="tag"\} 1$/m.test((await call(registry.url, 'GET', '/metrics')).text));
    } finally {
      await registry.close();
    }
  });
});
