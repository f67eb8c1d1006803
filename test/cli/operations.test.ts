import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage, type TestImage } from '../helpers/images.ts';
import { spawnBerth } from '../helpers/process.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

const configYaml = `
gc:
  gracePeriod: 0
  interval: 0
quotas:
  - name: ci
    repositories: ["ci/**"]
    maxBytes: 1MiB
retention:
  policies:
    - repositories: ["ci/**"]
      keepLatest: 1
`;

async function berth(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnBerth(args);
  const code = await child.exited;
  return { code, stdout: child.lines.join('\n'), stderr: child.stderr() };
}

describe('berth gc, usage and retention', () => {
  let dir: { path: string; remove(): Promise<void> };
  let config: string;
  let registry: TestRegistry;
  let images: TestImage[];
  before(async () => {
    dir = await tempDir('berth-ops-cli');
    config = join(dir.path, 'berth.yaml');
    await writeFile(config, configYaml);
    // A registry serving the same data while the commands run beside it.
    registry = await startTestRegistry({ 'gc.interval': 0 }, { dataDir: dir.path });
    images = [randomImage(), randomImage()];
    await pushImage(registry.url, 'ci/app', 'build-1', images[0] as TestImage);
    await sleep(5);
    await pushImage(registry.url, 'ci/app', 'build-2', images[1] as TestImage);
  });
  after(async () => {
    await registry.close();
    await dir.remove();
  });
  const common = () => ['--config', config, '--data', dir.path];

  it('berth usage prints each quota, and the repositories asked for', async () => {
    const result = await berth(['usage', ...common(), '--repositories', 'ci/*']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^quota ci \(ci\/\*\*\): \d+\.\d KiB of 1\.0 MiB, 1 repositories$/m);
    assert.match(result.stdout, /^ci\/\*: \d+\.\d KiB in 1 repositories$/m);
    const json = JSON.parse((await berth(['usage', ...common(), '--json'])).stdout) as { quotas: { name: string; maxBytes: number }[] };
    assert.deepEqual(
      json.quotas.map((quota) => [quota.name, quota.maxBytes]),
      [['ci', 1024 * 1024]],
    );
  });

  it('berth retention --dry-run lists what would go, deleting nothing', async () => {
    const result = await berth(['retention', '--dry-run', ...common()]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^would delete tag ci/app:build-1 \\(${images[0]?.manifest.digest}\\)$`, 'm'));
    assert.match(result.stdout, new RegExp(`^would delete manifest ci/app@${images[0]?.manifest.digest}$`, 'm'));
    assert.match(result.stdout, /^1 repositories checked: would delete 1 tags and 1 manifests/m);
    assert.equal((await call(registry.url, 'GET', '/v2/ci/app/manifests/build-1', { headers: { accept: images[0]?.manifest.mediaType ?? '' } })).status, 200);
  });

  it('berth gc --dry-run counts, and berth gc frees, after retention removed an image', async () => {
    assert.equal((await berth(['retention', ...common()])).code, 0);
    await sleep(5);
    const dry = await berth(['gc', '--dry-run', ...common()]);
    assert.equal(dry.code, 0, dry.stderr);
    const freed = [images[0]?.config, ...(images[0]?.layers ?? [])].reduce((total, blob) => total + (blob?.bytes.length ?? 0), 0);
    assert.match(dry.stdout, new RegExp(`^garbage collection would free ${(freed / 1024).toFixed(1)} KiB`, 'm'));
    assert.match(dry.stdout, /^ {2}blobs deleted: +3$/m);
    assert.match(dry.stdout, /^ {2}unreferenced layer links: 3$/m);
    const real = await berth(['gc', '--json', '--verbose', ...common()]);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /^\{/, 'with --json, stdout is the JSON alone');
    assert.match(real.stderr, /"level":20/, '--verbose logs go to stderr');
    const report = JSON.parse(real.stdout) as { linksRemoved: number; blobsDeleted: number; bytesFreed: number; dryRun: boolean };
    assert.deepEqual([report.dryRun, report.linksRemoved, report.blobsDeleted], [false, 3, 3]);
    const image = images[0] as TestImage;
    assert.equal(
      report.bytesFreed,
      [image.config, ...image.layers].reduce((total, blob) => total + blob.bytes.length, 0),
    );
    assert.equal((await call(registry.url, 'GET', `/v2/ci/app/blobs/${image.config.digest}`)).status, 404);
    assert.equal((await call(registry.url, 'GET', `/v2/ci/app/blobs/${images[1]?.config.digest}`)).status, 200);
  });

  it('berth gc says so and fails while another pass runs', async () => {
    const lease = await registry.server.registry.operations.store.leases.acquire('gc');
    assert.ok(lease !== undefined);
    try {
      const result = await berth(['gc', ...common()]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /another garbage collection pass is running/);
    } finally {
      await lease.release();
    }
  });

  it('berth retention without policies says what to configure', async () => {
    const result = await berth(['retention', '--data', dir.path]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no retention policies are configured \(retention\.policies/);
  });
});
