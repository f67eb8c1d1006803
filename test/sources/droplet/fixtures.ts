import { readFile, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import tar, { type Header } from 'tar-stream';

/** One tar entry to write: header fields and, for files, the content. */
export type TarEntry = Partial<Header> & { name: string; body?: string | Buffer };

/** Builds a tar archive in memory from entries (test fixtures are small). */
export async function tarOf(entries: readonly TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of Readable.from(pack)) chunks.push(chunk as Buffer);
  })();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ mtime: new Date(1_700_000_000_000), ...header }, body ?? Buffer.alloc(0), (error) => (error ? reject(error) : resolve()));
    });
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** Every entry of a tar (or gzip tar) archive, with file contents. */
export async function entriesOf(archive: Buffer): Promise<(Header & { body: Buffer })[]> {
  const bytes = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive;
  const extract = tar.extract();
  const entries: (Header & { body: Buffer })[] = [];
  const feeding = (async () => {
    extract.end(bytes);
  })();
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    entries.push({ ...entry.header, body: Buffer.concat(chunks) });
  }
  await feeding;
  return entries;
}

export const vcap = { uid: 2000, gid: 2000 };

/**
 * A small Cloud Foundry-like rootfs: busybox for /bin/sh and the coreutils
 * applets, bash as /bin/bash (the launcher runs through bash), and
 * /etc/passwd with vcap as uid 2000. `release` lands in /etc/rootfs-release
 * so that two builds differ. Only tests that run it need the real static
 * binaries (`runnable`, from Debian's busybox-static and bash-static; skip
 * with `missingCommands('busybox', 'bash-static')`); the others get
 * stand-ins of the same names, so they need no host tool.
 */
export async function buildRootfs(release: string, runnable = false): Promise<Buffer> {
  const busybox = runnable ? await readFile('/usr/bin/busybox') : Buffer.from('#!/bin/sh\n# stand-in for busybox\n');
  const bash = runnable ? await readFile('/bin/bash-static') : Buffer.from('#!/bin/sh\n# stand-in for bash\n');
  const applets = ['sh', 'cat', 'echo', 'id', 'ls', 'pwd', 'env', 'stat', 'readlink', 'test', 'mkdir', 'grep', 'sleep', 'true'];
  const dir = (name: string, mode = 0o755, owner = { uid: 0, gid: 0 }): TarEntry => ({ name, type: 'directory', mode, ...owner });
  return tarOf([
    dir('bin/'),
    { name: 'bin/busybox', mode: 0o755, body: busybox },
    ...applets.map((applet): TarEntry => ({ name: `bin/${applet}`, type: 'symlink', linkname: 'busybox', mode: 0o777 })),
    { name: 'bin/bash', mode: 0o755, body: bash },
    dir('etc/'),
    { name: 'etc/passwd', mode: 0o644, body: 'root:x:0:0:root:/root:/bin/bash\nvcap:x:2000:2000::/home/vcap:/bin/bash\n' },
    { name: 'etc/group', mode: 0o644, body: 'root:x:0:\nvcap:x:2000:\n' },
    { name: 'etc/rootfs-release', mode: 0o644, body: `${release}\n` },
    dir('home/'),
    dir('home/vcap/', 0o755, vcap),
    dir('tmp/', 0o1777),
    dir('usr/'),
    dir('usr/bin/'),
  ]);
}

/** Writes a rootfs to `path`, gzip-compressed or not. */
export async function writeRootfs(path: string, release: string, gzip: boolean, runnable = false): Promise<void> {
  const archive = await buildRootfs(release, runnable);
  await writeFile(path, gzip ? gzipSync(archive) : archive);
}

export interface DropletOptions {
  startCommand?: string;
  /** Changes the app's output, so that two droplets differ. */
  greeting?: string;
  /** Extra entries (for the conversion rules). */
  extra?: TarEntry[];
}

/**
 * A droplet with the layout Cloud Foundry's builder produces, entries named
 * "./…": app/ (with .profile.d/ and .profile), profile.d/ (from buildpacks),
 * deps/, tmp/, logs/, staging_info.yml; a hard link and a symlink.
 */
export async function buildDroplet(options: DropletOptions = {}): Promise<Buffer> {
  const startCommand = options.startCommand ?? './start.sh';
  const greeting = options.greeting ?? 'hello';
  const dir = (name: string, mode = 0o755): TarEntry => ({ name, type: 'directory', mode, uid: 1001, gid: 1001 });
  const file = (name: string, body: string, mode = 0o644): TarEntry => ({ name, mode, uid: 1001, gid: 1001, body });
  const archive = await tarOf([
    dir('./'),
    dir('./app/'),
    file(
      './app/start.sh',
      [
        '#!/bin/bash',
        'echo "greeting=$GREETING"',
        'echo "tool=$(tool)"',
        'echo "app-profile=$APP_PROFILE dot-profile=$DOT_PROFILE"',
        'echo "uid=$(id -u) gid=$(id -g) pwd=$(pwd) home=$HOME port=$PORT tmpdir=$TMPDIR"',
        'echo "data=$(cat data/hard-link.txt)"',
        'echo "current=$(cat current/VERSION)"',
        '',
      ].join('\n'),
      0o750,
    ),
    dir('./app/data/'),
    file('./app/data/original.txt', 'linked content\n', 0o640),
    { name: './app/data/hard-link.txt', type: 'link', linkname: './app/data/original.txt', mode: 0o640, uid: 1001, gid: 1001 },
    file('./app/secret.txt', 'not for others\n', 0o600),
    dir('./app/.profile.d/'),
    file('./app/.profile.d/app.sh', 'export APP_PROFILE=sourced\n'),
    file('./app/.profile', 'export DOT_PROFILE=sourced\n'),
    { name: './app/current', type: 'symlink', linkname: '../deps/0', mode: 0o777, uid: 1001, gid: 1001 },
    dir('./deps/'),
    dir('./deps/0/'),
    dir('./deps/0/bin/'),
    file('./deps/0/bin/tool', '#!/bin/sh\necho from-deps\n', 0o755),
    file('./deps/0/VERSION', '1.2.3\n'),
    dir('./profile.d/'),
    file('./profile.d/000_multi-supply.sh', `export GREETING=${greeting}\nexport PATH="$PATH:$DEPS_DIR/0/bin"\n`),
    dir('./tmp/'),
    dir('./logs/'),
    file('./staging_info.yml', JSON.stringify({ detected_buildpack: 'binary', start_command: startCommand })),
    ...(options.extra ?? []),
  ]);
  return gzipSync(archive);
}
