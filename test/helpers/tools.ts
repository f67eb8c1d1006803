import { execFile, spawnSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Runs a program and returns its stdout; a non-zero exit rejects with stderr in the message. */
export async function run(command: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  try {
    const { stdout } = await execFileAsync(command, [...args], { maxBuffer: 64 * 1024 * 1024, ...options });
    return stdout;
  } catch (error) {
    const failure = error as Error & { stderr?: string; stdout?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${failure.message}\n${failure.stderr ?? ''}`, { cause: error });
  }
}

/** Whether a program is on PATH (for tests that need Debian packages). */
export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** The Debian package each host tool comes from, where its name differs from the tool's. */
const debianPackages: Record<string, string> = {
  busybox: 'busybox-static',
  chroot: 'coreutils',
  ctr: 'containerd',
  docker: 'docker.io',
  dockerd: 'docker.io',
  nginx: 'nginx-light',
  postgres: 'postgresql',
  initdb: 'postgresql',
  'ceph-mon': 'ceph-mon',
  'ceph-osd': 'ceph-osd',
  ceph: 'ceph-common',
  'ceph-authtool': 'ceph-common',
  'radosgw-admin': 'ceph-common',
  monmaptool: 'ceph-base',
  'systemd-analyze': 'systemd',
  'qemu-aarch64-static': 'qemu-user-static',
};

export function debianPackageOf(command: string): string {
  return debianPackages[command] ?? command;
}

/** Where test processes note what they skipped (set by test/helpers/global-setup.ts for the run). */
export const skipsDirectoryVariable = 'TEST_SKIPPED_TOOLS_DIR';

/**
 * A reason to skip when a required program is missing, naming its Debian
 * package; false when all are there. The skip is noted for the run's summary
 * (test/helpers/global-setup.ts). Under CI (`CI=true`) a missing program
 * throws instead: CI installs everything (`.ci/run`), so nothing is skipped
 * unseen there.
 */
export function missingCommands(...commands: string[]): string | false {
  const missing = commands.filter((command) => !hasCommand(command));
  if (missing.length === 0) return false;
  return missingPackages(missing.map((command) => ({ what: command, debianPackage: debianPackageOf(command) })));
}

/** The same for anything a Debian package provides (server binaries found off PATH, say). */
export function missingPackages(missing: readonly { what: string; debianPackage: string }[]): string {
  const packages = [...new Set(missing.map((entry) => entry.debianPackage))];
  const reason = `needs ${missing.map((entry) => entry.what).join(', ')} (Debian ${packages.length === 1 ? 'package' : 'packages'} ${packages.join(' ')})`;
  if (process.env['CI'] === 'true') {
    throw new Error(`CI=true and this test ${reason}: apt-get install -y --no-install-recommends ${packages.join(' ')} (as .ci/run does)`);
  }
  noteSkips(packages.map((debianPackage) => ({ debianPackage, reason })));
  return reason;
}

/**
 * A reason to skip when the tests do not run as root (dockerd, containerd,
 * chroot and mounts need it), or false. Noted for the run's summary; under
 * CI (`CI=true`) it throws instead, as a missing tool does: `.ci/run` runs
 * the tests as root.
 */
export function needsRoot(what: string): string | false {
  if (process.getuid?.() === 0) return false;
  const reason = `needs root: ${what}`;
  if (process.env['CI'] === 'true') throw new Error(`CI=true and this test ${reason} (.ci/run runs the tests as root)`);
  noteSkips([{ reason }]);
  return reason;
}

/** Notes skips for the run's summary (test/helpers/global-setup.ts); a skip without a package needs root. */
function noteSkips(skips: readonly { debianPackage?: string; reason: string }[]): void {
  const directory = process.env[skipsDirectoryVariable];
  if (directory === undefined || directory === '') return;
  const file = process.argv.find((argument) => /\.test\.[cm]?[jt]s$/.test(argument)) ?? process.argv[1] ?? 'unknown';
  const lines = skips.map((skip) => `${JSON.stringify({ file: basename(file), ...skip })}\n`);
  appendFileSync(join(directory, `${process.pid}.jsonl`), lines.join(''));
}
