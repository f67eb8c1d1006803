import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { tempDir } from './tmp.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** `node --test` as package.json runs it, on the fixture, with an empty PATH: no host tool is there. */
async function runFixture(env: Record<string, string>, options: { notRoot?: boolean } = {}): Promise<{ code: number | null; output: string }> {
  const empty = await tempDir('berth-empty-path');
  // Not root: as root, the run becomes the unprivileged user nobody; otherwise it is not root already.
  const nobody = options.notRoot === true && process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  try {
    const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-global-setup=test/helpers/global-setup.ts', 'test/fixtures/needs-host-tools.fixture.ts'], {
      cwd: root,
      env: { PATH: empty.path, HOME: empty.path, ...(options.notRoot === true ? { FIXTURE_NOT_ROOT: 'true' } : {}), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...nobody,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    return { code, output };
  } finally {
    await empty.remove();
  }
}

describe('tests that need host tools', () => {
  it('skip with the Debian package named, and the run ends with one summary and the install command', async () => {
    const { code, output } = await runFixture({});
    assert.equal(code, 0, output);
    assert.match(output, /needs umoci \(Debian package umoci\)/);
    assert.match(output, /needs busybox \(Debian package busybox-static\)/);
    const summaries = output.match(/Skipped tests in /g) ?? [];
    assert.equal(summaries.length, 1, output);
    assert.match(output, /sudo apt-get install -y --no-install-recommends busybox-static umoci\n/);
  });

  it('that need root skip when not root, with their own line in the summary; under CI=true they fail', async () => {
    const { code, output } = await runFixture({}, { notRoot: true });
    assert.equal(code, 0, output);
    assert.match(output, /needs root: to try the summary/);
    assert.match(output, /Skipped tests in 1 file that need root \(needs-host-tools\.fixture\.ts\): run npm test as root to run them\.\n/);
    assert.match(output, /sudo apt-get install -y --no-install-recommends busybox-static umoci\n/, 'the tools summary stays');
    const ci = await runFixture({ CI: 'true' }, { notRoot: true });
    assert.notEqual(ci.code, 0, ci.output);
    assert.match(ci.output, /CI=true and this test needs root: to try the summary/);
  });

  it('fail the run under CI=true', async () => {
    const { code, output } = await runFixture({ CI: 'true' });
    assert.notEqual(code, 0, output);
    assert.match(output, /CI=true and this test needs umoci \(Debian package umoci\)/);
  });
});
