import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { httpRequest } from '../../io/http-request.ts';
import { parseRepositoryName, parseTag, type RepositoryName, type Tag } from '../../oci/names.ts';
import { usageParser } from '../options.ts';
import { readStdinLine } from '../stdin.ts';

/** `berth droplet push FILE --app NAME --guid G`: what Cloud Foundry staging does with cube's registry. */
export function registerDroplet(program: Command): void {
  const droplet = program.command('droplet').description('Cloud Foundry droplets served as images');
  droplet
    .command('push')
    .description('upload a staged droplet (.tgz); NAME:GUID and NAME:latest then pull it on the latest rootfs')
    .argument('<file>', 'the droplet, as Cloud Foundry staging produced it')
    .requiredOption('--app <name>', 'repository name of the app, prefix included (such as cf/<space>/<app>)', usageParser(parseRepositoryName))
    .requiredOption('--guid <guid>', 'the droplet guid, its tag', usageParser(parseTag))
    .option('--registry <url>', 'the registry', usageParser(registryUrl), 'http://127.0.0.1:5000')
    .option('--username <name>', 'sign in as this user (with --password-stdin), when the registry has access control')
    .option('--password-stdin', 'read the password from standard input')
    .action(async (file: string, options: { app: RepositoryName; guid: Tag; registry: string; username?: string; passwordStdin?: boolean }, command: Command) => {
      if ((options.username === undefined) !== (options.passwordStdin !== true)) command.error('error: --username and --password-stdin go together', { exitCode: 2 });
      const credentials = options.username === undefined ? undefined : `${options.username}:${await readStdinLine()}`;
      const name = options.app;
      const guid = options.guid;
      const { size } = await stat(file);
      const url = new URL(`/v2/${name}/blobs/?guid=${encodeURIComponent(guid)}`, options.registry);
      const response = await httpRequest(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/gzip',
          'content-length': String(size),
          ...(credentials === undefined ? {} : { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` }),
        },
        body: Readable.toWeb(createReadStream(file)) as ReadableStream<Uint8Array>,
      });
      const text = await response.text();
      if (response.status !== 201) throw new Error(`${url.origin} refused the droplet: HTTP ${response.status} ${describe(text)}`);
      process.stdout.write(`${text.trim()}\n`);
      process.stderr.write(`droplet ${guid} of ${name} stored as layer ${text.trim()}; pull ${url.host}/${name}:${guid}\n`);
    });
}

function registryUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`"${value}" is not a URL; give http://HOST:PORT or https://HOST`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`"${value}" is not an http:// or https:// URL`);
  return value;
}

function describe(body: string): string {
  try {
    const error = (JSON.parse(body) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
    if (error !== undefined) return `${error.code ?? ''}: ${error.message ?? ''}`;
  } catch {
    // Not an OCI error body: show its start.
  }
  return body.slice(0, 200);
}
