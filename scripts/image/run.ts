import { setTimeout as sleep } from 'node:timers/promises';
import { imagePaths, imagePort } from './compose.ts';

/** How `npm run image -- --run ENGINE` runs the image; docs/deployment.md and the README show the same command. */
export interface RunOptions {
  /** The container's name (default `berth`). */
  container?: string;
  /** `-p`'s host side: `PORT` or `ADDRESS:PORT` (default 5000). */
  publish?: string;
  /** The named volume (or host directory) mounted on the data directory (default `berth-data`). */
  volume?: string;
  /** More `run` flags, before the image's name. */
  flags?: readonly string[];
}

export const runDefaults = { container: 'berth', publish: String(imagePort), volume: 'berth-data' } as const;

/** `run` arguments for podman and docker alike: detached, read-only root, the port published, the data on a volume. */
export function runArguments(image: string, options: RunOptions = {}): string[] {
  return [
    'run',
    '-d',
    '--name',
    options.container ?? runDefaults.container,
    '--read-only',
    '-p',
    `${options.publish ?? runDefaults.publish}:${imagePort}`,
    '-v',
    `${options.volume ?? runDefaults.volume}:${imagePaths.data}`,
    ...(options.flags ?? []),
    image,
  ];
}

/** Where a published port answers on this machine: the address given, else loopback. */
export function publishedUrl(publish: string): string {
  const colon = publish.lastIndexOf(':');
  const given = colon < 0 ? '' : publish.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const host = given === '' || given === '0.0.0.0' ? '127.0.0.1' : given;
  return `http://${host.includes(':') ? `[${host}]` : host}:${publish.slice(colon + 1)}`;
}

/**
 * Starts the image with `cli` (the engine's command line) and waits until
 * Berth reports ready on `url` (`GET /readyz`), at most `timeoutMs`.
 * Resolves to the container's id; a container that never gets ready is
 * reported with its logs.
 */
export async function startContainer(cli: (args: string[]) => Promise<string>, image: string, url: string, options: RunOptions = {}, timeoutMs = 60_000): Promise<string> {
  const id = (await cli(runArguments(image, options))).trim();
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      await response.arrayBuffer();
      if (response.status === 200) return id;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  const logs = await cli(['logs', id]).catch((error: unknown) => String(error));
  throw new Error(`the container ${id} did not answer ${url}/readyz within ${timeoutMs / 1000} s:\n${logs}`);
}
