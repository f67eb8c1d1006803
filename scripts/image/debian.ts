import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import tar from 'tar-stream';
import type { LayerEntry } from './layer.ts';
import type { Platform } from './platform.ts';

const execFileAsync = promisify(execFile);

/** A Debian package as it went into the image. */
export interface DebianPackage {
  name: string;
  version: string;
  architecture: string;
  sha256: string;
}

/**
 * The shared libraries the Node binary links against (its ELF `NEEDED`
 * entries: libc, libm, libdl, libpthread, libstdc++, libgcc_s) and the
 * dynamic loader, plus CA certificates. The gcc-N-base package, which
 * holds libstdc++'s and libgcc's copyright, is found from libstdc++6's
 * dependencies.
 */
export const runtimePackages = ['libc6', 'libgcc-s1', 'libstdc++6', 'ca-certificates'] as const;

/** apt lists older than this are fetched again (a security update may have replaced a package). */
const listsMaxAgeMs = 24 * 60 * 60 * 1000;

/**
 * Debian's runtime for `platform`, as layer entries: the packages are
 * fetched with apt-get from the machine's own apt sources into `cacheDir`
 * (apt state of its own there, so the machine's dpkg and apt state stay
 * untouched and a foreign architecture needs no `dpkg --add-architecture`),
 * and their files read with dpkg-deb, without maintainer scripts. What a
 * server never reads is left out: documentation other than copyright
 * files, manual pages, gconv modules, gdb and lintian files.
 */
export async function debianRuntime(platform: Platform, cacheDir: string): Promise<{ entries: LayerEntry[]; packages: DebianPackage[] }> {
  const apt = await aptFor(platform.debianArchitecture, cacheDir);
  const names = [...runtimePackages, await gccBase(apt)];
  const packages = await Promise.all(names.map((name) => apt.show(name)));
  const entries: LayerEntry[] = [];
  const certificates: Buffer[] = [];
  for (const pkg of packages.sort((a, b) => a.name.localeCompare(b.name))) {
    const file = await apt.download(pkg);
    for (const entry of await readDeb(file)) {
      if (/^usr\/share\/ca-certificates\/mozilla\/[^/]+\.crt$/.test(entry.path) && entry.type === 'file' && 'bytes' in entry) {
        certificates.push(entry.bytes);
      } else if (kept(entry.path)) {
        entries.push(entry);
      }
    }
  }
  // What update-ca-certificates (a maintainer script, not run here) makes of them: one PEM bundle.
  if (certificates.length > 0) {
    entries.push({
      type: 'file',
      path: 'etc/ssl/certs/ca-certificates.crt',
      mode: 0o644,
      bytes: Buffer.concat(certificates.map((pem) => (pem.at(-1) === 0x0a ? pem : Buffer.concat([pem, Buffer.from('\n')])))),
    });
  }
  return { entries, packages };
}

function kept(path: string): boolean {
  if (/^usr\/share\/doc\/[^/]+\/copyright$/.test(path)) return true;
  if (/^(usr\/)?lib(64)?\//.test(path)) return !/\/gconv\//.test(path);
  return /^etc\/ld\.so\.conf\.d\//.test(path);
}

interface Apt {
  show(name: string): Promise<DebianPackage>;
  depends(name: string): Promise<string[]>;
  download(pkg: DebianPackage): Promise<string>;
}

async function aptFor(architecture: string, cacheDir: string): Promise<Apt> {
  const root = join(cacheDir, `apt-${architecture}`);
  const lists = join(root, 'lists');
  const debs = join(root, 'debs');
  await mkdir(join(lists, 'partial'), { recursive: true });
  await mkdir(join(root, 'archives', 'partial'), { recursive: true });
  await mkdir(debs, { recursive: true });
  const status = join(root, 'status');
  await writeFile(status, '');
  const options = [
    ['Dir::State::Lists', lists],
    ['Dir::State::status', status],
    ['Dir::Cache', join(root, 'cache')],
    ['Dir::Cache::archives', join(root, 'archives')],
    ['APT::Architecture', architecture],
    ['APT::Architectures::', architecture],
    ['Debug::NoLocking', '1'],
    ['APT::Sandbox::User', 'root'],
  ].flatMap(([key, value]) => ['-o', `${key}=${value}`]);
  const aptGet = (args: string[], cwd?: string) => command('apt-get', [...options, '-q', ...args], cwd);
  const aptCache = (args: string[]) => command('apt-cache', [...options, ...args]);
  const updated = join(root, 'updated');
  const fresh = await stat(updated).then(
    (info) => Date.now() - info.mtimeMs < listsMaxAgeMs,
    () => false,
  );
  if (!fresh) {
    await aptGet(['update']);
    await writeFile(updated, '');
  }
  return {
    async show(name) {
      const fields = new Map<string, string>();
      for (const line of (await aptCache(['show', '--no-all-versions', name])).split('\n')) {
        const match = /^([\w-]+): (.*)$/.exec(line);
        if (match?.[1] !== undefined && match[2] !== undefined && !fields.has(match[1])) fields.set(match[1], match[2]);
      }
      const version = fields.get('Version');
      const sha256 = fields.get('SHA256');
      const arch = fields.get('Architecture');
      if (version === undefined || sha256 === undefined || arch === undefined) throw new Error(`apt-cache show ${name} (${architecture}) named no version`);
      return { name, version, architecture: arch, sha256 };
    },
    async depends(name) {
      return [...(await aptCache(['depends', name])).matchAll(/^\s+Depends: ([^\s<>]+)$/gm)].map((match) => (match[1] as string).replace(/:.*$/, ''));
    },
    async download(pkg) {
      const file = join(debs, `${pkg.name}_${pkg.version.replace(':', '%3a')}_${pkg.architecture}.deb`);
      if ((await sha256Of(file)) !== pkg.sha256) {
        await aptGet(['download', `${pkg.name}:${pkg.architecture}=${pkg.version}`], debs);
        const got = await sha256Of(file);
        if (got !== pkg.sha256) throw new Error(`${file}: sha256 ${got ?? '(missing)'}, but apt's lists say ${pkg.sha256}`);
      }
      return file;
    },
  };
}

async function gccBase(apt: Apt): Promise<string> {
  const base = (await apt.depends('libstdc++6')).find((name) => /^gcc-\d+-base$/.test(name));
  if (base === undefined) throw new Error('libstdc++6 depends on no gcc-N-base package');
  return base;
}

async function sha256Of(file: string): Promise<string | undefined> {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch {
    return undefined;
  }
}

async function command(program: string, args: string[], cwd?: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(program, args, { maxBuffer: 64 * 1024 * 1024, ...(cwd === undefined ? {} : { cwd }) });
    return stdout;
  } catch (error) {
    throw new Error(`${program} ${args.filter((arg) => !arg.includes('=')).join(' ')} failed: ${(error as { stderr?: string }).stderr ?? (error as Error).message}`, {
      cause: error,
    });
  }
}

/** The files of a .deb's data archive (`dpkg-deb --fsys-tarfile`), hard links resolved to copies. */
export async function readDeb(file: string): Promise<LayerEntry[]> {
  const child = spawn('dpkg-deb', ['--fsys-tarfile', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let errors = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (errors += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const extract = tar.extract();
  const parsing = pipeline(child.stdout, extract);
  parsing.catch(() => undefined);
  const entries: LayerEntry[] = [];
  const files = new Map<string, Buffer>();
  for await (const entry of extract) {
    const { header } = entry;
    const path = header.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    if (path === '') continue;
    const mode = (header.mode ?? 0o644) & 0o7777;
    if (header.type === 'file') {
      const bytes = Buffer.concat(chunks);
      files.set(path, bytes);
      entries.push({ type: 'file', path, mode, bytes });
    } else if (header.type === 'symlink') {
      entries.push({ type: 'symlink', path, target: header.linkname ?? '' });
    } else if (header.type === 'link') {
      const bytes = files.get((header.linkname ?? '').replace(/^\.?\/+/, ''));
      if (bytes === undefined) throw new Error(`${file}: hard link ${path} to a file not seen before it`);
      entries.push({ type: 'file', path, mode, bytes });
    }
    // Directories come from the paths under them (withParents), so that empty package directories are not kept.
  }
  await parsing;
  const code = await exited;
  if (code !== 0) throw new Error(`dpkg-deb --fsys-tarfile ${file} exited with ${code}: ${errors}`);
  return entries;
}
