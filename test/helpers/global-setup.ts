// The test run's global setup (`node --test --test-global-setup=…`, see
// package.json): test processes note each test skipped for want of a host
// tool in a shared directory, and the run ends with one summary of them and
// the command that installs what is missing.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { skipsDirectoryVariable } from './tools.ts';

let directory: string | undefined;

export function globalSetup(): void {
  directory = mkdtempSync(join(tmpdir(), 'berth-test-skips-'));
  // Test processes are spawned after this, with this environment.
  process.env[skipsDirectoryVariable] = directory;
}

export function globalTeardown(): void {
  if (directory === undefined) return;
  const skips: { file: string; debianPackage?: string; reason: string }[] = [];
  for (const name of readdirSync(directory)) {
    for (const line of readFileSync(join(directory, name), 'utf8').split('\n')) {
      if (line !== '') skips.push(JSON.parse(line) as { file: string; debianPackage?: string; reason: string });
    }
  }
  rmSync(directory, { recursive: true, force: true });
  if (skips.length === 0) return;
  const filesOf = (selected: typeof skips) => [...new Set(selected.map((skip) => skip.file))].sort();
  const forTools = skips.filter((skip) => skip.debianPackage !== undefined);
  const packages = [...new Set(forTools.map((skip) => skip.debianPackage))].sort();
  const files = filesOf(forTools);
  let summary = '';
  if (forTools.length > 0) {
    summary +=
      `\nSkipped tests in ${files.length} ${files.length === 1 ? 'file' : 'files'} for want of host tools (${files.join(', ')}).\n` +
      `Install them to run everything: sudo apt-get install -y --no-install-recommends ${packages.join(' ')}\n`;
  }
  const asRoot = filesOf(skips.filter((skip) => skip.debianPackage === undefined));
  if (asRoot.length > 0) {
    summary += `\nSkipped tests in ${asRoot.length} ${asRoot.length === 1 ? 'file' : 'files'} that need root (${asRoot.join(', ')}): run npm test as root to run them.\n`;
  }
  process.stdout.write(summary);
}
