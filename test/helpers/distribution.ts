import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { importPKCS8, SignJWT } from 'jose';
import { tempDir } from './tmp.ts';
import { run } from './tools.ts';

export interface Distribution {
  /** http://127.0.0.1:PORT */
  url: string;
  host: string;
  close(): Promise<void>;
}

/**
 * CNCF Distribution (Debian's docker-registry) as a child process on a
 * free loopback port (or `port`), storing in a temp dir; `auth` goes into
 * its config as given (see startTokenService for `auth: token`).
 */
export async function startDistribution(auth?: Record<string, unknown>, port = 0): Promise<Distribution> {
  const directory = await tempDir('berth-distribution');
  const config = {
    version: 0.1,
    log: { level: 'info', formatter: 'text' },
    storage: { filesystem: { rootdirectory: join(directory.path, 'data') }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
    ...(auth === undefined ? {} : { auth }),
  };
  const configPath = join(directory.path, 'config.yml');
  await writeFile(configPath, JSON.stringify(config));
  const child = spawn('docker-registry', ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
    await directory.remove();
  };
  try {
    const host = await listeningAddress(child);
    return { url: `http://${host}`, host, close: stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

function listeningAddress(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\S+?)"?(\s|$)/.exec(output);
      if (match?.[1] !== undefined) {
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve(match[1].replace(/"$/, ''));
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`docker-registry exited (${code}) before listening:\n${output}`)));
  });
}

export interface TokenService {
  /** The `auth:` section for Distribution's config. */
  auth: Record<string, unknown>;
  /** Every token request, with the scopes asked and whether credentials came. */
  requests: { scopes: string[]; user: string | undefined }[];
  close(): Promise<void>;
}

/**
 * A Docker token service (distribution's token spec): answers
 * GET /token?service=&scope= with a JWT signed by a fresh self-signed key
 * (x5c header), granting what was asked to `user`:`password` holders and
 * nothing to anyone else (401). Distribution trusts it via rootcertbundle.
 */
export async function startTokenService(user: string, password: string): Promise<TokenService> {
  const directory = await tempDir('berth-token');
  const keyPath = join(directory.path, 'key.pem');
  const certPath = join(directory.path, 'cert.pem');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=berth-test-token',
  ]);
  const key = await importPKCS8(await readFile(keyPath, 'utf8'), 'ES256');
  const certificate = new X509Certificate(await readFile(certPath));
  const service = 'berth-test-registry';
  const issuer = 'berth-test-issuer';
  const requests: TokenService['requests'] = [];
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const scopes = url.searchParams.getAll('scope');
    const header = request.headers.authorization ?? '';
    const given = header.startsWith('Basic ') ? Buffer.from(header.slice(6), 'base64').toString() : undefined;
    requests.push({ scopes, user: given?.split(':')[0] });
    if (url.pathname !== '/token' || given !== `${user}:${password}`) {
      response.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
      return;
    }
    const access = scopes.map((scope) => {
      const [type, ...rest] = scope.split(':');
      const actions = rest.pop() ?? '';
      return { type, name: rest.join(':'), actions: actions === '*' ? ['*'] : actions.split(',') };
    });
    const now = Math.floor(Date.now() / 1000);
    new SignJWT({ access })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', x5c: [certificate.raw.toString('base64')] })
      .setIssuer(issuer)
      .setSubject(user)
      .setAudience(service)
      .setIssuedAt(now)
      .setNotBefore(now - 10)
      .setExpirationTime(now + 300)
      .setJti(randomBytes(8).toString('hex'))
      .sign(key)
      .then((token) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() })));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    auth: { token: { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootcertbundle: certPath } },
    requests,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await directory.remove();
    },
  };
}

/**
 * Pushes an image to CNCF Distribution the way clients do (POST, then PUT
 * with the digest; Distribution takes no monolithic POST), tagged `reference`.
 */
export async function pushToDistribution(
  url: string,
  repository: string,
  reference: string,
  image: { blobs: readonly { digest: string; bytes: Buffer }[]; manifest: { bytes: Buffer; mediaType: string } },
): Promise<void> {
  for (const blob of image.blobs) {
    const head = await fetch(`${url}/v2/${repository}/blobs/${blob.digest}`, { method: 'HEAD' });
    if (head.status === 200) continue;
    const started = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    if (started.status !== 202) throw new Error(`upload start failed: ${started.status} ${await started.text()}`);
    await started.arrayBuffer();
    const location = new URL(started.headers.get('location') ?? '', url);
    location.searchParams.set('digest', blob.digest);
    const put = await fetch(location, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: blob.bytes });
    if (put.status !== 201) throw new Error(`blob push failed: ${put.status} ${await put.text()}`);
    await put.arrayBuffer();
  }
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'content-type': image.manifest.mediaType },
    body: image.manifest.bytes,
  });
  if (response.status !== 201) throw new Error(`manifest push failed: ${response.status} ${await response.text()}`);
  await response.arrayBuffer();
}
