import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startTestS3, type TestS3 } from '../helpers/s3.ts';
import { tempDir } from '../helpers/tmp.ts';
import { realImage } from './fixtures.ts';

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
  events: { event: string; [key: string]: unknown }[];
}

/** Runs the real `berth` entry point as scripts do; `--progress auto` writes JSON lines when stderr is not a terminal. */
function berth(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['src/cli/main.ts', ...args], { env: { ...process.env, ...env }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      const events = stdout
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as Outcome['events'][number]);
      resolve({ code, stdout, stderr, events });
    });
  });
}

describe('berth copy and sync on the command line', () => {
  let registry: TestRegistry;
  let s3: TestS3;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;
  const s3Env = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

  before(async () => {
    registry = await startTestRegistry();
    s3 = await startTestS3('cli');
    temp = await tempDir('berth-cli');
    image = await realImage();
    await pushImage(registry.url, 'cli/app', '1.0', image);
  });
  after(async () => {
    await registry?.close();
    await s3?.close();
    await temp?.remove();
  });

  test('a copy to a bucket and back, with one JSON event per line', async () => {
    const out = await berth(['copy', '--s3-endpoint', s3.endpoint, '--s3-path-style', `docker://${registry.host}/cli/app:1.0`, 's3://cli/images/app:1.0'], s3Env);
    assert.equal(out.code, 0, out.stderr + out.stdout);
    assert.deepEqual(
      out.events.map((event) => event.event).filter((name) => name.startsWith('image-')),
      ['image-started', 'image-copied'],
    );
    assert.ok(out.events.every((event) => typeof event['time'] === 'string'));
    const copied = out.events.find((event) => event.event === 'image-copied');
    assert.equal(copied?.['digest'], image.manifest.digest);
    assert.equal(copied?.['copied'], 3);

    const back = await berth(['copy', '--s3-endpoint', s3.endpoint, '--s3-path-style', 's3://cli/images/app:1.0', `docker://${registry.host}/cli/back:1.0`], s3Env);
    assert.equal(back.code, 0, back.stderr + back.stdout);
    const manifest = await fetch(`${registry.url}/v2/cli/back/manifests/1.0`, { method: 'HEAD', headers: { accept: image.manifest.mediaType } });
    assert.equal(manifest.headers.get('docker-content-digest'), image.manifest.digest);
  });

  test('exit codes scripts can trust', async () => {
    const missing = await berth(['copy', `docker://${registry.host}/cli/app:nope`, `oci:${temp.path}/x:1`]);
    assert.equal(missing.code, 4);
    const failed = missing.events.find((event) => event.event === 'image-failed');
    assert.equal(failed?.['code'], 'MANIFEST_UNKNOWN');
    assert.equal(failed?.['exitCode'], 4);

    const usage = await berth(['copy', 'ftp://example/x', `oci:${temp.path}/x:1`]);
    assert.equal(usage.code, 2);
    assert.match(String(usage.events[0]?.['message']), /unknown transport "ftp"/);

    const flags = await berth(['copy', '--dest-compress', 'brotli', `docker://${registry.host}/cli/app:1.0`, `oci:${temp.path}/x:1`]);
    assert.equal(flags.code, 2);
    assert.match(flags.stderr, /--dest-compress: "brotli" is not gzip or zstd/);

    const unreachable = await berth(['copy', 'docker://127.0.0.1:9/cli/app:1.0', `oci:${temp.path}/x:1`]);
    assert.equal(unreachable.code, 1);
    assert.match(String(unreachable.events.find((event) => event.event === 'image-failed')?.['message']), /127\.0\.0\.1:9/);
  });

  test('sync with --tags, then nothing to do', async () => {
    await pushImage(registry.url, 'cli/app', '2.0', await realImage());
    await pushImage(registry.url, 'cli/app', 'edge', await realImage());
    const first = await berth(['sync', '--tags', '[0-9.]+', `docker://${registry.host}/cli/app`, `oci-archive:${temp.path}/mirror.tar`]);
    assert.equal(first.code, 0, first.stderr + first.stdout);
    assert.deepEqual(
      first.events.find((event) => event.event === 'sync-done'),
      { time: first.events.at(-1)?.['time'], event: 'sync-done', images: 2, copied: 2, upToDate: 0, failed: 0 },
    );
    const second = await berth(['sync', '--tags', '[0-9.]+', `docker://${registry.host}/cli/app`, `oci-archive:${temp.path}/mirror.tar`]);
    assert.equal(second.code, 0);
    assert.equal(second.events.find((event) => event.event === 'sync-done')?.['upToDate'], 2);
  });

  test('--no-referrers, and a whole registry with --include and --exclude', async () => {
    const signature = randomImage({ layers: 1, subject: image.manifest, artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json' });
    await pushImage(registry.url, 'cli/app', signature.manifest.digest, signature);
    const bare = await berth(['copy', '--no-referrers', `docker://${registry.host}/cli/app:1.0`, `oci:${temp.path}/bare:1.0`]);
    assert.equal(bare.code, 0, bare.stderr + bare.stdout);
    assert.equal(bare.events.filter((event) => event.event === 'referrer-copied').length, 0);
    const signed = await berth(['copy', `docker://${registry.host}/cli/app:1.0`, `oci:${temp.path}/signed:1.0`]);
    assert.deepEqual(
      signed.events.filter((event) => event.event === 'referrer-copied').map((event) => event['digest']),
      [signature.manifest.digest],
    );
    const synced = await berth(['sync', '--tags', '1\\.0', `docker://${registry.host}/cli/app`, `oci:${temp.path}/synced`]);
    assert.equal(synced.code, 0, synced.stderr + synced.stdout);
    assert.deepEqual(
      synced.events.filter((event) => event.event === 'referrer-copied').map((event) => event['digest']),
      [signature.manifest.digest],
      'sync carries referrers by default',
    );
    const syncedBare = await berth(['sync', '--no-referrers', '--tags', '1\\.0', `docker://${registry.host}/cli/app`, `oci:${temp.path}/synced-bare`]);
    assert.equal(syncedBare.code, 0, syncedBare.stderr + syncedBare.stdout);
    assert.equal(syncedBare.events.filter((event) => event.event === 'referrer-copied').length, 0);

    await pushImage(registry.url, 'picked/keep', '1', randomImage());
    await pushImage(registry.url, 'picked/skip', '1', randomImage());
    const mirror = await berth(['sync', '--include', 'picked/**', '--exclude', 'picked/skip', `docker://${registry.host}`, `oci:${temp.path}/mirror`]);
    assert.equal(mirror.code, 0, mirror.stderr + mirror.stdout);
    assert.deepEqual(
      mirror.events.find((event) => event.event === 'mirror-done'),
      { time: mirror.events.at(-1)?.['time'], event: 'mirror-done', repositories: 1, synced: 1, failed: 0 },
    );
  });
});
