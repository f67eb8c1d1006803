import type { IncomingMessage } from 'node:http';
import { http } from '../../io/node-http.ts';
import type { Readable } from 'node:stream';
import { isRegistryError, RegistryError } from '../../errors/registry-error.ts';
import { LocationError } from '../location.ts';

/** Where the Docker Engine API listens when DOCKER_HOST and --daemon-host say nothing. */
export const defaultDaemonHost = 'unix:///var/run/docker.sock';

const maxJsonBytes = 16 * 1024 * 1024;

type Target = { socketPath: string } | { host: string; port: number };

/**
 * The Docker Engine API, as dockerd and `podman system service` serve it,
 * over a unix socket (`unix:///run/docker.sock`) or plain TCP
 * (`tcp://host:2375`). Paths are unversioned: the daemon's own API
 * version answers, which every call here has had since API 1.24.
 */
export class EngineClient {
  readonly host: string;
  readonly #target: Target;

  constructor(host: string) {
    this.host = host;
    this.#target = parseDaemonHost(host);
  }

  /** Sends a request; `body` is streamed. Answers with the response whatever its status. */
  send(method: string, path: string, options: { body?: Readable; contentType?: string; signal?: AbortSignal | undefined } = {}): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          ...this.#target,
          method,
          path,
          headers: { host: 'docker', ...(options.contentType === undefined ? {} : { 'content-type': options.contentType }) },
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
        resolve,
      );
      req.once('error', (error) => {
        options.body?.destroy();
        reject(this.#connectionError(error));
      });
      if (options.body === undefined) req.end();
      else {
        options.body.on('error', (error) => req.destroy(error));
        options.body.pipe(req);
      }
    });
  }

  /** A JSON answer; 404 is undefined, another failure a RegistryError with the daemon's message. */
  async json<T>(path: string, signal?: AbortSignal): Promise<T | undefined> {
    const response = await this.send('GET', path, { signal });
    const text = await readText(response);
    if (response.statusCode === 404) return undefined;
    if (response.statusCode !== 200) throw daemonFailure(this.host, `GET ${path}`, response.statusCode, text);
    return JSON.parse(text) as T;
  }

  /** Which engine answers: dockerd or podman's Docker-compatible service, for messages. */
  async version(signal?: AbortSignal): Promise<{ engine: string; apiVersion: string }> {
    const version = await this.json<{ Version?: string; ApiVersion?: string; Components?: { Name?: string }[] }>('/version', signal);
    const name = version?.Components?.find((component) => component.Name !== undefined)?.Name ?? 'Engine';
    return { engine: `${name} ${version?.Version ?? ''}`.trim(), apiVersion: version?.ApiVersion ?? '' };
  }

  #connectionError(error: Error): Error {
    const code = (error as NodeJS.ErrnoException).code;
    // A failure of the body being sent (a corrupt source blob) is that failure, not the daemon's.
    if (error.name === 'AbortError' || isRegistryError(error)) return error;
    const where = 'socketPath' in this.#target ? this.#target.socketPath : this.host;
    if (code === 'EACCES' || code === 'EPERM') {
      return new RegistryError(
        'DENIED',
        `docker-daemon: permission denied on ${where}: run as a user in the docker group (or root), or point --daemon-host at a socket you may use`,
        { cause: error },
      );
    }
    if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'ETIMEDOUT') {
      return new RegistryError(
        'UNKNOWN',
        `docker-daemon: cannot reach the daemon at ${this.host} (${code}); is dockerd or \`podman system service\` running? Set DOCKER_HOST or --daemon-host`,
        { cause: error },
      );
    }
    return new RegistryError('UNKNOWN', `docker-daemon: ${this.host}: ${error.message}`, { cause: error });
  }
}

export function parseDaemonHost(host: string): Target {
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length);
    if (socketPath === '') throw new LocationError(`daemon host "${host}": name the socket, such as unix:///var/run/docker.sock`);
    return { socketPath };
  }
  const match = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (match === null) throw new LocationError(`daemon host "${host}": expected unix:///path/to/socket or tcp://host:port (TLS and ssh:// are not supported)`);
  return { host: (match[1] as string).replace(/^\[(.*)\]$/, '$1'), port: Number(match[2] ?? 2375) };
}

/** The body of a (small) answer as text; larger than 16 MiB is an error. */
export async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response) {
    total += (chunk as Buffer).length;
    if (total > maxJsonBytes) {
      response.destroy();
      throw new RegistryError('SIZE_INVALID', 'docker-daemon: the answer is larger than 16 MiB');
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A daemon's error answer (`{"message": …}`) as a RegistryError. */
export function daemonFailure(host: string, what: string, status: number | undefined, text: string): RegistryError {
  let message = text.trim();
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? message;
  } catch {
    // Not JSON: the text as it is.
  }
  return new RegistryError(status === 404 ? 'MANIFEST_UNKNOWN' : 'UNKNOWN', `docker-daemon ${host}: ${what}: ${status ?? '?'} ${message}`);
}
