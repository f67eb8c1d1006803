import { tmpdir } from 'node:os';
import type { Command } from 'commander';
import { defaultAuthFiles } from '../config/auth-files.ts';
import { dockerHostFromEnvironment } from '../config/docker-host.ts';
import { byteSize } from '../config/units.ts';
import { defaultDaemonHost } from './daemon/engine-client.ts';
import { classifyFailure } from './exit-codes.ts';
import { LocationError } from './location.ts';
import type { StoreOptions } from './open-store.ts';
import { parsePlatform } from './platform.ts';
import { createReporter, type Reporter } from './progress.ts';
import type { TransferOptions } from './run.ts';

/** Flags `berth copy` and `berth sync` share. */
export interface TransferFlags {
  all?: boolean;
  platform?: string;
  destCompress?: string;
  preserveDigests?: boolean;
  jobs?: string;
  srcCreds?: string;
  destCreds?: string;
  authfile?: string;
  srcInsecure?: boolean;
  destInsecure?: boolean;
  chunkSize?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3PathStyle?: boolean;
  progress?: string;
  tempDir?: string;
  daemonHost?: string;
  /** False with --no-referrers. */
  referrers?: boolean;
}

export function addTransferOptions(command: Command): Command {
  return command
    .option('--all', 'copy every platform of an image index (default: only the host platform)')
    .option('--platform <os/arch[/variant]>', 'the platform to copy from an image index')
    .option('--dest-compress <gzip|zstd>', 'recompress layers; manifests are rewritten, image configs stay valid')
    .option('--preserve-digests', 'fail rather than rewrite a manifest (recompression, Docker to OCI for layouts)')
    .option('-j, --jobs <n>', 'blobs transferred at once (default: 4)')
    .option('--src-creds <user:password>', 'credentials for a docker:// source')
    .option('--dest-creds <user:password>', 'credentials for a docker:// destination')
    .option('--authfile <file>', 'docker/podman auth file (default: the usual locations)')
    .option('--src-insecure', 'plain HTTP to a docker:// source (loopback registries use it anyway)')
    .option('--dest-insecure', 'plain HTTP to a docker:// destination')
    .option('--chunk-size <size>', 'upload blobs larger than this to registries in resumable chunks (such as 64MiB)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint for s3:// (default: AWS)')
    .option('--s3-region <region>', 'region for s3://', 'us-east-1')
    .option('--s3-path-style', 'address buckets by path (most S3-compatible servers need it)')
    .option('--progress <auto|tty|json|none>', 'progress bars on a terminal, JSON lines otherwise', 'auto')
    .option('--temp-dir <dir>', 'where archives are unpacked and layers recompressed')
    .option('--daemon-host <unix:///path|tcp://host:port>', 'the Docker Engine API for docker-daemon: (default: $DOCKER_HOST, then unix:///var/run/docker.sock)')
    .option('--no-referrers', 'do not copy signatures, SBOMs and attestations (referrers and cosign tags) with images');
}

/** Turns the flags into transfer options; bad values are usage errors. */
export function transferOptions(flags: TransferFlags, signal: AbortSignal): TransferOptions {
  if (flags.all === true && flags.platform !== undefined) throw new LocationError('--all and --platform exclude each other');
  const compress = flags.destCompress;
  if (compress !== undefined && compress !== 'gzip' && compress !== 'zstd') throw new LocationError(`--dest-compress: "${compress}" is not gzip or zstd`);
  const jobs = Number(flags.jobs ?? 4);
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new LocationError(`--jobs: "${flags.jobs}" is not a positive number`);
  const tempDir = flags.tempDir ?? tmpdir();
  const shared: Omit<StoreOptions, 'credentials' | 'insecure'> = {
    authFiles: flags.authfile === undefined ? defaultAuthFiles() : [flags.authfile],
    tempDir,
    s3: {
      region: s3Region(flags.s3Region ?? 'us-east-1'),
      ...(flags.s3Endpoint === undefined ? {} : { endpoint: s3Endpoint(flags.s3Endpoint) }),
      // An endpoint means an S3-compatible server, which nearly always wants path style.
      forcePathStyle: flags.s3PathStyle === true || flags.s3Endpoint !== undefined,
    },
    ...(flags.chunkSize === undefined ? {} : { chunkSize: parseSize(flags.chunkSize) }),
    daemonHost: daemonHostOf(flags.daemonHost),
  };
  return {
    ...(flags.all === true ? { platforms: 'all' as const } : flags.platform === undefined ? {} : { platforms: platformOption(flags.platform) }),
    ...(compress === undefined ? {} : { compress }),
    ...(flags.preserveDigests === true ? { preserveDigests: true } : {}),
    jobs,
    ...(flags.referrers === false ? { referrers: false } : {}),
    spoolDir: tempDir,
    signal,
    source: { ...shared, ...credentialsOf(flags.srcCreds, '--src-creds'), ...(flags.srcInsecure === true ? { insecure: true } : {}) },
    destination: { ...shared, ...credentialsOf(flags.destCreds, '--dest-creds'), ...(flags.destInsecure === true ? { insecure: true } : {}) },
    reporter: reporterFor(flags.progress ?? 'auto'),
  };
}

/** --daemon-host, else DOCKER_HOST as the docker CLI reads it, else the standard socket (checked when a docker-daemon: location uses it). */
function daemonHostOf(flag: string | undefined): string {
  return flag ?? dockerHostFromEnvironment() ?? defaultDaemonHost;
}

function reporterFor(mode: string): Reporter {
  if (mode !== 'auto' && mode !== 'tty' && mode !== 'json' && mode !== 'none') throw new LocationError(`--progress: "${mode}" is not auto, tty, json or none`);
  const resolved = mode === 'auto' ? (process.stderr.isTTY === true ? 'tty' : 'json') : mode;
  return createReporter(resolved, process.stdout, process.stderr);
}

function credentialsOf(value: string | undefined, flag: string): { credentials?: { username: string; password: string } } {
  if (value === undefined) return {};
  const colon = value.indexOf(':');
  if (colon <= 0) throw new LocationError(`${flag}: expected USER:PASSWORD`);
  return { credentials: { username: value.slice(0, colon), password: value.slice(colon + 1) } };
}

function s3Endpoint(value: string): string {
  const url = URL.parse(value);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw new LocationError(`--s3-endpoint: "${value}" is not an http:// or https:// URL`);
  return value;
}

function s3Region(value: string): string {
  if (value.trim() === '') throw new LocationError('--s3-region: empty');
  return value;
}

function platformOption(value: string): ReturnType<typeof parsePlatform> {
  try {
    return parsePlatform(value);
  } catch (cause) {
    throw new LocationError(`--platform: ${(cause as Error).message}`);
  }
}

function parseSize(value: string): number {
  const parsed = byteSize.safeParse(value);
  if (!parsed.success || parsed.data <= 0) throw new LocationError(`--chunk-size: "${value}" is not a size such as 64MiB`);
  return parsed.data;
}

/**
 * Runs `berth copy` or `berth sync`: options from the flags, the work's
 * exit code as the process's, a usage error for bad flags, and SIGINT or
 * SIGTERM turned into an abort the work reports (exit 130).
 */
export async function runTransferCommand(command: string, flags: TransferFlags, work: (options: TransferOptions) => Promise<number>): Promise<void> {
  const interrupt = interruptSignal();
  try {
    const options = transferOptions(flags, interrupt.signal);
    try {
      process.exitCode = await work(options);
    } finally {
      options.reporter.close();
    }
  } catch (error) {
    process.stderr.write(`berth ${command}: ${(error as Error).message}\n`);
    process.exitCode = classifyFailure(error).exitCode;
  } finally {
    interrupt.dispose();
  }
}

/** Aborts on SIGINT/SIGTERM so the command can report, clean up and exit 130. */
function interruptSignal(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const stop = () => controller.abort(Object.assign(new Error('interrupted'), { name: 'AbortError' }));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    },
  };
}
