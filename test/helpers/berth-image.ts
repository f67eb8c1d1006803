import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot } from '../../scripts/image/bundle.ts';
import { buildImage, defaultCacheDir, type BuiltImage } from '../../scripts/image/build.ts';
import { hostPlatform } from '../../scripts/image/platform.ts';
import { missingCommands } from './tools.ts';
import { alive } from './process.ts';

/** Debian packages and Node tarballs, shared with `npm run image`. */
export const imageCacheDir = defaultCacheDir;

/** The name test builds give the image. */
export const testImageName = 'berth:test';

/** Why image tests cannot run here: building needs apt-get and dpkg-deb (Debian), and npm for the Node tarball. */
export function imageBuildUnavailable(): string | false {
  return missingCommands('apt-get', 'apt-cache', 'dpkg-deb', 'npm');
}

/**
 * Berth's image for this machine's platform, built once per version of
 * the sources however many test files ask (test files run as separate
 * processes, so the build is shared through a directory under the temp
 * dir, keyed by a hash of everything that goes into the image, and a lock).
 */
export async function sharedBerthImage(): Promise<BuiltImage> {
  const directory = join(tmpdir(), 'berth-image-tests', await inputsHash());
  const result = join(directory, 'built.json');
  const lock = `${directory}.lock`;
  await mkdir(join(tmpdir(), 'berth-image-tests'), { recursive: true });
  for (let waited = 0; ; waited += 1) {
    const done = await readBuilt(result);
    if (done !== undefined) return done;
    if (await acquire(lock)) break;
    if (waited > 1200) throw new Error(`no image build finished within 10 minutes (lock ${lock})`);
    await sleep(500);
  }
  try {
    await removeStaleBuilds(join(tmpdir(), 'berth-image-tests'));
    await mkdir(directory, { recursive: true });
    const built = await buildImage({ output: join(directory, 'berth.oci'), platforms: [hostPlatform()], name: testImageName, cacheDir: imageCacheDir });
    await writeFile(result, JSON.stringify(built));
    return built;
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** Builds of older sources (a few hundred MB each) go once nobody can be using them. */
async function removeStaleBuilds(root: string): Promise<void> {
  for (const name of await readdir(root)) {
    const info = await stat(join(root, name)).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > 2 * 60 * 60 * 1000) await rm(join(root, name), { recursive: true, force: true });
  }
}

async function readBuilt(path: string): Promise<BuiltImage | undefined> {
  try {
    const built = JSON.parse(await readFile(path, 'utf8')) as BuiltImage & { created: string };
    return { ...built, created: new Date(built.created) };
  } catch {
    return undefined;
  }
}

/** A lock directory holding the owner's pid; one left by a process that died is taken over. */
async function acquire(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    await writeFile(join(lock, 'pid'), String(process.pid));
    return true;
  } catch {
    const owner = Number(await readFile(join(lock, 'pid'), 'utf8').catch(() => ''));
    if (owner > 0 && !alive(owner)) await rm(lock, { recursive: true, force: true });
    return false;
  }
}

/** Every file the image is made from (sources, build scripts, lock file, the bin's Node flags). */
async function inputsHash(): Promise<string> {
  const hash = createHash('sha256');
  const files = ['package.json', 'package-lock.json', 'bin/berth.js'];
  for (const folder of ['src', 'scripts/image']) {
    for (const entry of await readdir(join(projectRoot, folder), { recursive: true, withFileTypes: true })) {
      if (entry.isFile()) files.push(join(entry.parentPath, entry.name).slice(projectRoot.length));
    }
  }
  for (const file of files.sort())
    hash
      .update(file)
      .update('\0')
      .update(await readFile(join(projectRoot, file)))
      .update('\0');
  return hash.digest('hex').slice(0, 16);
}
