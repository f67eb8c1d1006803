import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { projectRoot } from './bundle.ts';
import { buildImage, defaultCacheDir, dockerArchive, type BuiltImage } from './build.ts';
import { parsePlatforms } from './platform.ts';
import { publishedUrl, runDefaults, startContainer } from './run.ts';

const execFileAsync = promisify(execFile);

const usage = `npm run image -- [options]

Builds Berth's container image as an OCI archive (docs/deployment.md).

  --output FILE        where to write the archive (default berth-VERSION.oci)
  --platform LIST      linux/amd64, linux/arm64 or both, comma-separated (default both)
  --name NAME          the image's name in the archive (default berth:VERSION)
  --load ENGINE        then load it into podman or docker
  --run ENGINE         then load it into podman or docker and start it: container "berth",
                       read-only, port 5000, data on the volume berth-data; waits until it is ready
  --publish [ADDR:]PORT  the host port --run publishes (default 5000)
  --cache-dir DIR      downloaded Debian packages and Node tarballs (default ~/.cache/berth-image)
`;

/** Loads the archive into podman or docker; resolves to what the engine printed. */
async function loadInto(engine: 'podman' | 'docker', image: BuiltImage): Promise<string> {
  if (engine === 'podman') return (await execFileAsync('podman', ['load', '--input', image.output], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  const temp = await mkdtemp(join(tmpdir(), 'berth-image-load-'));
  try {
    const archive = join(temp, 'berth.tar');
    await dockerArchive(image.output, image.name, archive);
    return (await execFileAsync('docker', ['load', '--input', archive], { maxBuffer: 16 * 1024 * 1024 })).stdout.trim();
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      output: { type: 'string' },
      platform: { type: 'string', default: 'linux/amd64,linux/arm64' },
      name: { type: 'string' },
      load: { type: 'string' },
      run: { type: 'string' },
      publish: { type: 'string', default: runDefaults.publish },
      'cache-dir': { type: 'string', default: defaultCacheDir },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return;
  }
  const engine = engineOf('--load', values.load) ?? engineOf('--run', values.run);
  if (values.load !== undefined && values.run !== undefined && values.load !== values.run) throw new Error('--load and --run name different engines');
  const { version } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string };
  const started = performance.now();
  const image = await buildImage({
    output: resolve(values.output ?? `berth-${version}.oci`),
    platforms: parsePlatforms(values.platform),
    name: values.name ?? `berth:${version}`,
    cacheDir: resolve(values['cache-dir']),
    log: (message) => process.stderr.write(`image: ${message}\n`),
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const lines = [
    `${image.output}: ${image.name} ${image.digest} (built in ${seconds} s, timestamps ${image.created.toISOString()})`,
    ...image.images.map((built) => `  ${built.platform}: ${built.manifest}, ${(built.compressedBytes / 1e6).toFixed(1)} MB compressed`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (engine === undefined) return;
  process.stdout.write(`${await loadInto(engine, image)}\n`);
  if (values.run === undefined) return;
  const url = publishedUrl(values.publish);
  const cli = async (args: string[]) => (await execFileAsync(engine, args, { maxBuffer: 16 * 1024 * 1024 })).stdout;
  const id = await startContainer(cli, image.name, url, { publish: values.publish });
  process.stdout.write(`Berth is running in the container ${runDefaults.container} (${id.slice(0, 12)}), its data on the volume ${runDefaults.volume}: ${url}/v2/\n`);
}

function engineOf(flag: string, value: string | undefined): 'podman' | 'docker' | undefined {
  if (value === undefined || value === 'podman' || value === 'docker') return value;
  throw new Error(`${flag} takes podman or docker, not "${value}"`);
}

main().catch((error: unknown) => {
  process.stderr.write(`npm run image: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
