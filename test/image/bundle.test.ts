import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { bundleBerth, bundleEntry, leftOutPackages, noticesFile } from '../../scripts/image/bundle.ts';
import { startBerthServer, type BerthProcess } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('the production bundle', () => {
  let temp: Awaited<ReturnType<typeof tempDir>>;
  let berth: BerthProcess & { url: string };
  before(async () => {
    temp = await tempDir('berth-bundle');
    await bundleBerth(join(temp.path, 'app'));
    berth = await startBerthServer(['--data', join(temp.path, 'data'), '--workers', '1'], {}, join(temp.path, 'app', bundleEntry));
  });
  after(async () => {
    await berth?.stop();
    await temp?.remove();
  });

  it("leaves out Fastify's schema compilers, which Berth never loads", async () => {
    const notices = await readFile(join(temp.path, 'app', noticesFile), 'utf8');
    const listed = (name: string) => new RegExp(`^${name} \\d`, 'm').test(notices);
    assert.ok(listed('fastify'), 'the notices list the bundled packages');
    for (const name of [...leftOutPackages, 'ajv', 'ajv-formats']) assert.ok(!listed(name), `${name} is not in the bundle`);
  });

  it('serves the API and answers bad input with OCI errors, without them', async () => {
    const base = await fetch(`${berth.url}/v2/`);
    assert.equal(base.status, 200);
    const put = await fetch(`${berth.url}/v2/bundle/test/manifests/latest`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: '{not json',
    });
    assert.equal(put.status, 400);
    assert.equal(((await put.json()) as { errors: { code: string }[] }).errors[0]?.code, 'MANIFEST_INVALID');
    const missing = await fetch(`${berth.url}/v2/bundle/test/tags/list`);
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { errors: { code: string }[] }).errors[0]?.code, 'NAME_UNKNOWN');
  });
});
