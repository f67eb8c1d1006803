import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import type { BlobStore } from '../../src/blobs/blob-store.ts';
import { FsBlobStore } from '../../src/blobs/fs/fs-blob-store.ts';
import { packTar, type PackedFile } from '../../src/copy/transports/tar.ts';
import { hexOf, type Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { StoredLayer } from '../../src/meta/droplet-store.ts';
import { bundleBerth, projectRoot } from './bundle.ts';
import { defaultConfig, imageConfig, imageIndex, imageLabels, imageManifest, imagePaths, imageUser, smallBlob, systemFiles, type SmallBlob } from './compose.ts';
import { debianRuntime, type DebianPackage } from './debian.ts';
import { storeLayer, type LayerEntry } from './layer.ts';
import { nodeBinary } from './node-binary.ts';
import type { Platform } from './platform.ts';

const execFileAsync = promisify(execFile);

/** Downloads kept between builds, outside node_modules so that `npm ci` keeps them. */
export const defaultCacheDir = join(homedir(), '.cache', 'berth-image');

export interface BuildOptions {
  /** The OCI archive to write (replaced when it exists). */
  output: string;
  platforms: readonly Platform[];
  /** The name the archive gives the image (`berth:0.1.0`): its ref.name annotation. */
  name: string;
  /** Downloaded Debian packages and Node tarballs, kept between builds. */
  cacheDir: string;
  /** Every timestamp in the image; default SOURCE_DATE_EPOCH, else the commit's time. */
  sourceDateEpoch?: number;
  /** The org.opencontainers.image.revision label; default the commit checked out. */
  revision?: string;
  log?: (message: string) => void;
}

export interface BuiltPlatform {
  platform: string;
  manifest: Digest;
  /** Layers and config as pushed (gzip), which is what "compressed size" means for a registry. */
  compressedBytes: number;
  layers: StoredLayer[];
}

export interface BuiltImage {
  output: string;
  name: string;
  /** What the archive's index.json names: the image index when there are several platforms, else the manifest. */
  digest: Digest;
  mediaType: string;
  images: BuiltPlatform[];
  debianPackages: Record<string, DebianPackage[]>;
  node: string;
  created: Date;
  revision: string | undefined;
}

/**
 * Builds Berth's container image with Berth's own code: each layer a tar
 * written in a fixed order with fixed times and owners and gzipped into a
 * blob store (the droplet layer writer), config, manifests and index
 * composed as JSON, and the OCI layout packed into an archive (the copy
 * command's tar packer). Layers, per platform: Debian's runtime libraries
 * and system files, the Node binary, the bundled app. The same commit and
 * the same Debian package versions give the same digest.
 */
export async function buildImage(options: BuildOptions): Promise<BuiltImage> {
  const log = options.log ?? (() => undefined);
  const created = new Date((options.sourceDateEpoch ?? (await sourceDateEpoch())) * 1000);
  const packageJson = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string; description: string };
  const revision = options.revision ?? (await gitRevision());
  const work = await mkdtemp(join(tmpdir(), 'berth-image-'));
  try {
    const blobs = await FsBlobStore.open(join(work, 'store'));
    log('bundling the app');
    const app = await storeLayer(blobs, await appEntries(join(work, 'bundle')), created);
    const facts = { created, version: packageJson.version, description: packageJson.description, revision, nodeFlags: await nodeFlags() };
    const images: (BuiltPlatform & { manifestBlob: SmallBlob; config: SmallBlob; platformValue: Platform })[] = [];
    const debianPackages: Record<string, DebianPackage[]> = {};
    let nodeSource = '';
    for (const platform of options.platforms) {
      log(`${platform.name}: Debian packages`);
      const runtime = await debianRuntime(platform, options.cacheDir);
      debianPackages[platform.name] = runtime.packages;
      const base = await storeLayer(blobs, [...runtime.entries, ...baseEntries(runtime.packages)], created);
      log(`${platform.name}: Node`);
      const node = await nodeBinary(platform, options.cacheDir);
      nodeSource = `node ${node.version}`;
      const nodeLayer = await storeLayer(
        blobs,
        [
          { type: 'file', path: imagePaths.node.slice(1), mode: 0o755, size: node.size, open: () => createReadStream(node.path) },
          { type: 'file', path: 'usr/share/doc/node/LICENSE', mode: 0o644, bytes: node.license },
        ],
        created,
      );
      const layers = [
        { layer: base, createdBy: `berth image: Debian ${runtime.packages.map((pkg) => `${pkg.name}=${pkg.version}`).join(' ')}; /etc/passwd, /etc/group` },
        { layer: nodeLayer, createdBy: `berth image: ${imagePaths.node} from npm ${node.source}` },
        { layer: app, createdBy: `berth image: ${imagePaths.app} (bundled Berth ${packageJson.version}), ${imagePaths.config}` },
      ];
      const config = imageConfig({ ...facts, platform, layers });
      const manifest = imageManifest(
        config,
        layers.map(({ layer }) => layer),
      );
      const compressedBytes = config.size + layers.reduce((sum, { layer }) => sum + layer.size, 0);
      images.push({
        platform: platform.name,
        platformValue: platform,
        manifest: manifest.digest,
        manifestBlob: manifest,
        config,
        compressedBytes,
        layers: layers.map(({ layer }) => layer),
      });
    }
    const first = images[0];
    if (first === undefined) throw new Error('no platform to build');
    const top =
      images.length === 1
        ? first.manifestBlob
        : imageIndex(
            images.map((image) => ({ platform: image.platformValue, manifest: image.manifestBlob })),
            imageLabels(facts),
          );
    log(`writing ${options.output}`);
    await writeArchive(
      options.output,
      options.name,
      top,
      images.flatMap((image) => [image.config, image.manifestBlob]),
      images.flatMap((image) => image.layers),
      blobs,
    );
    return {
      output: options.output,
      name: options.name,
      digest: top.digest,
      mediaType: top.mediaType,
      images: images.map(({ platform, manifest, compressedBytes, layers }) => ({ platform, manifest, compressedBytes, layers })),
      debianPackages,
      node: nodeSource,
      created,
      revision,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The app layer: the bundle, the image's configuration file, and what the image is made of. */
async function appEntries(bundleDir: string): Promise<LayerEntry[]> {
  const files = await bundleBerth(bundleDir);
  const entries: LayerEntry[] = [];
  for (const file of files) entries.push({ type: 'file', path: `${imagePaths.app.slice(1)}/${file}`, mode: 0o644, bytes: await readFile(join(bundleDir, file)) });
  entries.push({ type: 'file', path: imagePaths.config.slice(1), mode: 0o644, bytes: Buffer.from(defaultConfig) });
  return entries;
}

/** Users, name lookup, the data directory (Berth's user's, so a new volume there is too) and /tmp. */
function baseEntries(packages: readonly DebianPackage[]): LayerEntry[] {
  const entries: LayerEntry[] = Object.entries(systemFiles()).map(([path, text]) => ({ type: 'file', path, mode: 0o644, bytes: Buffer.from(text) }));
  entries.push({ type: 'directory', path: imagePaths.data.slice(1), mode: 0o750, uid: imageUser.uid, gid: imageUser.gid });
  entries.push({ type: 'directory', path: 'tmp', mode: 0o1777 });
  const list = packages.map((pkg) => `${pkg.name} ${pkg.version} ${pkg.architecture} sha256:${pkg.sha256}\n`).join('');
  entries.push({ type: 'file', path: 'usr/share/doc/berth/debian-packages', mode: 0o644, bytes: Buffer.from(list) });
  return entries;
}

/** Packs an OCI image layout (oci-layout, index.json naming `top` as `name`, every blob) into `output`. */
async function writeArchive(output: string, name: string, top: SmallBlob, small: readonly SmallBlob[], layers: readonly StoredLayer[], blobs: BlobStore): Promise<void> {
  const files: PackedFile[] = [];
  const addBytes = (path: string, bytes: Buffer) => files.push({ name: path, size: bytes.length, open: () => Readable.from([bytes]) });
  const index = smallBlob(mediaTypes.ociIndex, {
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: refAnnotations(name) }],
  });
  addBytes('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
  addBytes('index.json', index.bytes);
  const written = new Set<string>();
  for (const blob of [top, ...small]) {
    if (written.has(blob.digest)) continue;
    written.add(blob.digest);
    addBytes(`blobs/sha256/${hexOf(blob.digest)}`, blob.bytes);
  }
  for (const layer of layers) {
    if (written.has(layer.digest)) continue;
    written.add(layer.digest);
    const stream = () => Readable.from(blobStream(blobs, layer.digest));
    files.push({ name: `blobs/sha256/${hexOf(layer.digest)}`, size: layer.size, open: stream });
  }
  const [layout, indexFile, ...blobFiles] = files;
  const ordered = [layout, indexFile, ...blobFiles.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))].filter((file): file is PackedFile => file !== undefined);
  await mkdir(dirname(resolve(output)), { recursive: true });
  await rm(output, { force: true });
  await packTar(ordered, resolve(output));
}

/** A stored blob's bytes (packTar opens its files synchronously; the store opens asynchronously). */
async function* blobStream(blobs: BlobStore, digest: Digest): AsyncGenerator<Buffer> {
  for await (const chunk of await blobs.open(digest)) yield chunk as Buffer;
}

/**
 * How the archive names the image: `org.opencontainers.image.ref.name`
 * (podman, skopeo and Berth's archive kind read it) and
 * `io.containerd.image.name`, a full reference (docker load ≥ 25 and ctr
 * read it), which for `berth:0.1.0` is Docker's `docker.io/library/berth:0.1.0`.
 */
export function refAnnotations(name: string): Record<string, string> {
  const [first = '', ...rest] = name.split('/');
  const hasRegistry = rest.length > 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  const full = hasRegistry ? name : `docker.io/${rest.length === 0 ? 'library/' : ''}${name}`;
  return { 'io.containerd.image.name': full, 'org.opencontainers.image.ref.name': name };
}

/**
 * The image (this machine's platform) as a `docker save` archive named
 * `name`, for Docker Engines older than 25 that load no OCI archive:
 * written by `berth copy`, which picks the platform out of an index.
 */
export async function dockerArchive(ociArchive: string, name: string, output: string): Promise<void> {
  await execFileAsync(process.execPath, [join(projectRoot, 'bin', 'berth.js'), 'copy', `oci-archive:${ociArchive}`, `docker-archive:${output}:${name}`], {
    maxBuffer: 16 * 1024 * 1024,
  });
}

/** SOURCE_DATE_EPOCH (reproducible-builds.org) when set, else the time of the commit checked out, else 0. */
export async function sourceDateEpoch(): Promise<number> {
  const fromEnvironment = process.env['SOURCE_DATE_EPOCH'];
  if (fromEnvironment !== undefined && fromEnvironment !== '') {
    if (!/^\d+$/.test(fromEnvironment)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds, not "${fromEnvironment}"`);
    return Number(fromEnvironment);
  }
  const time = await git(['log', '-1', '--format=%ct']);
  return time === undefined ? 0 : Number(time);
}

/** The commit checked out, marked `-dirty` when tracked files differ from it. */
async function gitRevision(): Promise<string | undefined> {
  const commit = await git(['rev-parse', 'HEAD']);
  if (commit === undefined) return undefined;
  const clean = await execFileAsync('git', ['diff', '--quiet', 'HEAD'], { cwd: projectRoot }).then(
    () => true,
    () => false,
  );
  return clean ? commit : `${commit}-dirty`;
}

async function git(args: string[]): Promise<string | undefined> {
  try {
    return (await execFileAsync('git', args, { cwd: projectRoot })).stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The Node flags of bin/berth.js's `#!` line: the one place they are set, for npm start and the image alike. */
export async function nodeFlags(): Promise<string[]> {
  const shebang = (await readFile(join(projectRoot, 'bin', 'berth.js'), 'utf8')).split('\n', 1)[0] ?? '';
  return shebang.split(/\s+/).filter((word) => word.startsWith('--'));
}
