import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyExitCodes } from '../../src/copy/exit-codes.ts';
import { runBerth } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('a source file or directory that does not exist', () => {
  let temp: { path: string; remove(): Promise<void> };
  before(async () => {
    temp = await tempDir('berth-missing-source');
    await mkdir(join(temp.path, 'empty-dir'));
  });
  after(async () => {
    await temp?.remove();
  });

  const cases: [string, (dir: string) => string[], RegExp][] = [
    [
      'copy from a docker-archive: that is not there',
      (dir) => ['copy', `docker-archive:${dir}/nonexistent.tar`, `oci:${dir}/out`],
      /docker-archive:.*nonexistent\.tar: the file does not exist/,
    ],
    [
      'copy from an oci-archive: that is not there',
      (dir) => ['copy', `oci-archive:${dir}/nonexistent.tar`, `oci:${dir}/out`],
      /oci-archive:.*nonexistent\.tar: the file does not exist/,
    ],
    ['copy from an oci: directory that is not there', (dir) => ['copy', `oci:${dir}/nonexistent`, `oci:${dir}/out`], /oci:.*nonexistent: the directory does not exist/],
    [
      'copy from a named image of a docker-archive: that is not there',
      (dir) => ['copy', `docker-archive:${dir}/nonexistent.tar:app:1`, `oci:${dir}/out`],
      /nonexistent\.tar: the file does not exist/,
    ],
    ['sync from an oci: directory that is not there', (dir) => ['sync', `oci:${dir}/nonexistent`, `oci:${dir}/out`], /nonexistent: the directory does not exist/],
    // A directory that exists but holds no layout is a different mistake, and is named so.
    ['copy from an oci: directory without index.json', (dir) => ['copy', `oci:${dir}/empty-dir`, `oci:${dir}/out`], /not an OCI image layout \(no index\.json\)/],
  ];
  for (const [what, args, message] of cases) {
    test(`${what}: exit ${copyExitCodes.notFound}, saying so`, async () => {
      const result = await runBerth(args(temp.path));
      assert.equal(result.code, copyExitCodes.notFound, result.stderr + result.stdout);
      assert.match(result.stderr + result.stdout, message);
      assert.doesNotMatch(result.stderr + result.stdout, /names no single image/);
    });
  }
});
