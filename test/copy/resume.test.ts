import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Digest } from '../../src/oci/digest.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { Forwarder } from '../proxy/forwarder.ts';
import { realImage } from './fixtures.ts';
import { copy, RecordingReporter } from './transfer.ts';

/** A reporter that interrupts the copy (as Ctrl-C would) once `blobs` blobs are copied. */
function interruptAfter(blobs: number): { reporter: RecordingReporter; signal: AbortSignal } {
  const controller = new AbortController();
  const reporter = new RecordingReporter();
  reporter.listener = (event) => {
    if (event.event === 'blob-copied' && reporter.of('blob-copied').length === blobs) {
      controller.abort(Object.assign(new Error('interrupted'), { name: 'AbortError' }));
    }
  };
  return { reporter, signal: controller.signal };
}

describe('an interrupted copy, run again, resumes', () => {
  let source: TestRegistry;
  let destination: TestRegistry;
  let forwarder: Forwarder;
  let temp: { path: string; remove(): Promise<void> };
  let image: Awaited<ReturnType<typeof realImage>>;

  before(async () => {
    source = await startTestRegistry();
    destination = await startTestRegistry();
    forwarder = await Forwarder.start(destination.url);
    temp = await tempDir('berth-resume');
    image = await realImage({ layers: 4, layerSize: 32 * 1024 });
    await pushImage(source.url, 'big/app', '1.0', image);
  });
  after(async () => {
    await forwarder?.close();
    await destination?.close();
    await source?.close();
    await temp?.remove();
  });

  test('to a registry: blobs that arrived are not sent again', async () => {
    const target = `docker://${new URL(forwarder.url).host}/big/app:1.0`;
    const first = interruptAfter(2);
    const interrupted = await copy(`docker://${source.host}/big/app:1.0`, target, { tempDir: temp.path, reporter: first.reporter, options: { jobs: 1, signal: first.signal } });
    assert.equal(interrupted.code, 130, 'exit code for an interrupted copy');
    const arrived = first.reporter.of('blob-copied').map((event) => event.digest);
    assert.equal(arrived.length, 2);
    const manifest = await fetch(`${destination.url}/v2/big/app/manifests/1.0`);
    assert.equal(manifest.status, 404, 'no manifest before all its blobs');
    await manifest.arrayBuffer();

    const rerun = await copy(`docker://${source.host}/big/app:1.0`, target, { tempDir: temp.path, options: { jobs: 1 } });
    assert.equal(rerun.code, 0, rerun.reporter.failure());
    assert.deepEqual(
      rerun.reporter
        .of('blob-skipped')
        .map((event) => event.digest)
        .sort(),
      [...arrived].sort(),
    );
    assert.equal(rerun.reporter.of('blob-copied').length, 3, 'the other three (config and two layers)');
    for (const digest of arrived) assert.equal(countUploads(forwarder, digest), 1, `${digest} was uploaded once in all`);
    assert.equal(rerun.reporter.of('image-copied')[0]?.digest, image.manifest.digest);
  });

  test('to a layout: index.json names nothing until the copy completes', async () => {
    const layout = join(temp.path, 'layout');
    const first = interruptAfter(3);
    const interrupted = await copy(`docker://${source.host}/big/app:1.0`, `oci:${layout}:1.0`, {
      tempDir: temp.path,
      reporter: first.reporter,
      options: { jobs: 1, signal: first.signal },
    });
    assert.equal(interrupted.code, 130);
    await assert.rejects(access(join(layout, 'index.json')));
    const rerun = await copy(`docker://${source.host}/big/app:1.0`, `oci:${layout}:1.0`, { tempDir: temp.path, options: { jobs: 1 } });
    assert.equal(rerun.code, 0, rerun.reporter.failure());
    assert.equal(rerun.reporter.of('blob-skipped').length, 3);
    assert.equal(rerun.reporter.of('blob-copied').length, 2);
  });
});

/** Uploads of a blob that completed: the PUT that names its digest. */
function countUploads(forwarder: Forwarder, digest: Digest): number {
  return forwarder.requests.filter((line) => line.startsWith('PUT ') && decodeURIComponent(line).includes(`digest=${digest}`)).length;
}
