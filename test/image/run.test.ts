import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { projectRoot } from '../../scripts/image/bundle.ts';
import { publishedUrl, runArguments } from '../../scripts/image/run.ts';

/** The lines of the first ```sh block after `heading` in a Markdown file. */
async function shellBlockAfter(file: string, heading: string): Promise<string[]> {
  const text = await readFile(join(projectRoot, file), 'utf8');
  const from = text.indexOf(heading);
  assert.ok(from >= 0, `${file} has "${heading}"`);
  const block = /```sh\n([\s\S]*?)```/.exec(text.slice(from))?.[1] ?? '';
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter(Boolean);
}

describe('npm run image -- --run', () => {
  it('starts the container the documentation shows: named berth, read-only, port 5000, data on the volume berth-data', async () => {
    const { version } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    const command = `podman ${runArguments(`berth:${version}`).join(' ')}`;
    assert.equal(command, `podman run -d --name berth --read-only -p 5000:5000 -v berth-data:/var/lib/berth berth:${version}`);
    for (const file of ['README.md', 'docs/deployment.md']) {
      assert.ok((await readFile(join(projectRoot, file), 'utf8')).includes(command), `${file} shows what --run starts`);
    }
  });

  it('is the second of two commands from a clean checkout, in the README and the deployment guide', async () => {
    assert.deepEqual(await shellBlockAfter('README.md', '### As a container'), ['npm ci', 'npm run image -- --run podman']);
    assert.deepEqual(await shellBlockAfter('docs/deployment.md', '## The container image'), ['npm ci', 'npm run image -- --run podman']);
  });

  it('takes the container, port, volume and more flags it is given, before the image', () => {
    assert.deepEqual(runArguments('berth:test', { container: 'b1', publish: '127.0.0.1:5001', volume: '/srv/berth', flags: ['--cap-drop', 'ALL'] }), [
      'run',
      '-d',
      '--name',
      'b1',
      '--read-only',
      '-p',
      '127.0.0.1:5001:5000',
      '-v',
      '/srv/berth:/var/lib/berth',
      '--cap-drop',
      'ALL',
      'berth:test',
    ]);
  });

  it('waits on the address it published, loopback when it published on every address', () => {
    const cases = [
      ['5000', 'http://127.0.0.1:5000'],
      ['0.0.0.0:5000', 'http://127.0.0.1:5000'],
      ['127.0.0.1:5001', 'http://127.0.0.1:5001'],
      ['10.0.0.5:80', 'http://10.0.0.5:80'],
      ['[::1]:5000', 'http://[::1]:5000'],
    ];
    for (const [publish, url] of cases) assert.equal(publishedUrl(publish as string), url, publish);
  });
});
