import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StubDroplet {
  guid: string;
  appGuid: string;
  state: 'STAGED' | 'PROCESSING_UPLOAD' | 'FAILED';
  createdAt: string;
  bits?: Buffer;
  /** How the droplet reports its checksum; `wrong` reports one the bits do not have. */
  checksum?: 'sha256' | 'sha1' | 'wrong';
  lifecycle?: 'buildpack' | 'docker';
  webProcessType?: string;
  /** Other process types the droplet declares (a Procfile's worker: …). */
  processTypes?: Record<string, string>;
}

export interface StubApp {
  guid: string;
  name: string;
  spaceGuid: string;
  currentDroplet?: string;
  /** The web process's command; null as the Cloud Controller shows "use the detected one". */
  webCommand?: string | null;
  /** Commands set on other process types. */
  processCommands?: Record<string, string>;
  memoryInMb?: number;
  diskInMb?: number;
}

interface Resource {
  guid: string;
  name: string;
  parent?: string;
}

/**
 * Cloud Controller v3, UAA and a blobstore, each on its own port, doing
 * what the documented API does for the calls Berth makes: GET / links,
 * client_credentials tokens with expires_in, 401 CF-InvalidAuthToken for
 * missing or expired tokens, list endpoints with the v3 pagination shape,
 * 404 CF-ResourceNotFound, and droplet downloads answered with a 302 to a
 * signed blobstore URL that refuses requests carrying an Authorization
 * header (as S3 does).
 */
export class CloudFoundryStub {
  readonly clientId = 'berth-registry';
  readonly clientSecret = 'registry-secret';
  orgs: Resource[] = [];
  spaces: Resource[] = [];
  apps: StubApp[] = [];
  droplets: StubDroplet[] = [];
  tokenLifetimeSeconds = 3600;
  /** Smaller than the real 5000, so that listings span pages. */
  maxPerPage = 2;
  /** When set, the Cloud Controller accepts connections and never answers. */
  hang = false;
  /** When set, every v3 call is answered 503 with a CF error body (as during a Cloud Controller outage behind its router). */
  unavailable = false;
  /** When set, the blobstore sends half of a droplet and then nothing more. */
  stallDownloads = false;
  counts = { tokens: 0, unauthorized: 0, downloads: 0, blobstoreRefusedAuthorization: 0 };
  readonly #tokens = new Map<string, number>();
  #servers: Server[] = [];
  ccUrl = '';
  uaaUrl = '';
  blobstoreUrl = '';

  async start(): Promise<void> {
    const [cc, uaa, blobstore] = await Promise.all([
      listen((request, response) => this.#cloudController(request, response)),
      listen((request, response) => this.#uaa(request, response)),
      listen((request, response) => this.#blobstore(request, response)),
    ]);
    this.#servers = [cc.server, uaa.server, blobstore.server];
    [this.ccUrl, this.uaaUrl, this.blobstoreUrl] = [cc.url, uaa.url, blobstore.url];
  }

  async close(): Promise<void> {
    for (const server of this.#servers) server.closeAllConnections();
    await Promise.all(this.#servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }

  /** Every token issued so far stops being valid (revoked, or past its expiry). */
  expireTokens(): void {
    this.#tokens.clear();
  }

  #uaa(request: IncomingMessage, response: ServerResponse): void {
    void readBody(request).then((body) => {
      const expected = `Basic ${Buffer.from(`${this.clientId}:${this.clientSecret}`).toString('base64')}`;
      if (request.method !== 'POST' || request.url !== '/oauth/token') return send(response, 404, { error: 'not_found' });
      if (request.headers.authorization !== expected) return send(response, 401, { error: 'unauthorized', error_description: 'Bad credentials' });
      if (new URLSearchParams(body).get('grant_type') !== 'client_credentials') return send(response, 400, { error: 'unsupported_grant_type' });
      const token = randomBytes(16).toString('hex');
      this.#tokens.set(token, Date.now() + this.tokenLifetimeSeconds * 1000);
      this.counts.tokens += 1;
      return send(response, 200, {
        access_token: token,
        token_type: 'bearer',
        expires_in: this.tokenLifetimeSeconds,
        scope: 'cloud_controller.admin_read_only',
        jti: randomBytes(8).toString('hex'),
      });
    });
  }

  #blobstore(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? '/', this.blobstoreUrl);
    if (request.headers.authorization !== undefined) {
      this.counts.blobstoreRefusedAuthorization += 1;
      return sendXml(response, 400, '<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>');
    }
    const droplet = this.droplets.find((candidate) => `/droplets/${candidate.guid}` === url.pathname);
    if (droplet?.bits === undefined || url.searchParams.get('signature') !== signatureOf(droplet.guid)) {
      return sendXml(response, 403, '<Error><Code>AccessDenied</Code></Error>');
    }
    this.counts.downloads += 1;
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': droplet.bits.length });
    if (this.stallDownloads) response.write(droplet.bits.subarray(0, droplet.bits.length >> 1));
    else response.end(droplet.bits);
  }

  #cloudController(request: IncomingMessage, response: ServerResponse): void {
    if (this.hang) return;
    const url = new URL(request.url ?? '/', this.ccUrl);
    if (url.pathname === '/') {
      return send(response, 200, {
        links: {
          self: { href: this.ccUrl },
          cloud_controller_v3: { href: `${this.ccUrl}/v3`, meta: { version: '3.180.0' } },
          login: { href: this.uaaUrl },
          uaa: { href: this.uaaUrl },
        },
      });
    }
    const token = /^bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const expiresAt = token === undefined ? undefined : this.#tokens.get(token);
    if (expiresAt === undefined || expiresAt <= Date.now()) {
      this.counts.unauthorized += 1;
      return send(response, 401, { errors: [{ detail: 'Invalid Auth Token', title: 'CF-InvalidAuthToken', code: 1000 }] });
    }
    if (this.unavailable) {
      return send(response, 503, { errors: [{ detail: 'The service is currently unavailable', title: 'CF-ServiceUnavailable', code: 10015 }] });
    }
    const query = url.searchParams;
    const names = query.get('names')?.split(',');
    const inList = (value: string | undefined, list: string | null) => list === null || list.split(',').includes(value ?? '');
    let match: RegExpExecArray | null;
    if (url.pathname === '/v3/organizations') {
      return this.#list(
        response,
        url,
        this.orgs.filter((org) => names === undefined || names.includes(org.name)).map((org) => this.#named(org, 'organizations')),
      );
    }
    if ((match = /^\/v3\/(spaces|organizations)\/([^/]+)$/.exec(url.pathname)) !== null) {
      const collection = match[1] as 'spaces' | 'organizations';
      const found = (collection === 'spaces' ? this.spaces : this.orgs).find((candidate) => candidate.guid === match?.[2]);
      return found === undefined ? notFound(response, collection === 'spaces' ? 'Space' : 'Organization') : send(response, 200, this.#named(found, collection));
    }
    if (url.pathname === '/v3/spaces') {
      const spaces = this.spaces.filter((space) => (names === undefined || names.includes(space.name)) && inList(space.parent, query.get('organization_guids')));
      return this.#list(
        response,
        url,
        spaces.map((space) => this.#named(space, 'spaces')),
      );
    }
    if (url.pathname === '/v3/apps') {
      const apps = this.apps.filter((app) => (names === undefined || names.includes(app.name)) && inList(app.spaceGuid, query.get('space_guids')));
      return this.#list(
        response,
        url,
        apps.map((app) => this.#app(app)),
      );
    }
    if ((match = /^\/v3\/apps\/([^/]+)(\/.*)?$/.exec(url.pathname)) !== null) {
      const app = this.apps.find((candidate) => candidate.guid === match?.[1]);
      if (app === undefined) return notFound(response, 'App');
      const rest = match[2] ?? '';
      if (rest === '') return send(response, 200, this.#app(app));
      if (rest === '/droplets/current') {
        const droplet = this.droplets.find((candidate) => candidate.guid === app.currentDroplet);
        return droplet === undefined ? notFound(response, 'Droplet') : send(response, 200, this.#droplet(droplet));
      }
      if (rest === '/droplets') {
        const droplets = this.droplets.filter((droplet) => droplet.appGuid === app.guid && inList(droplet.guid, query.get('guids')) && inList(droplet.state, query.get('states')));
        return this.#list(
          response,
          url,
          droplets.map((droplet) => this.#droplet(droplet)),
        );
      }
      if ((match = /^\/processes\/([^/]+)$/.exec(rest)) !== null) {
        const type = match[1] ?? '';
        const command = type === 'web' ? (app.webCommand ?? null) : (app.processCommands?.[type] ?? null);
        // As the Cloud Controller does: an app has a process for web and for each type its current droplet declares.
        const current = this.droplets.find((candidate) => candidate.guid === app.currentDroplet);
        if (type !== 'web' && current?.processTypes?.[type] === undefined && app.processCommands?.[type] === undefined) return notFound(response, 'Process');
        return send(response, 200, {
          guid: `${app.guid}-${type}`,
          type,
          command,
          instances: 1,
          memory_in_mb: app.memoryInMb ?? 1024,
          disk_in_mb: app.diskInMb ?? 1024,
          log_rate_limit_in_bytes_per_second: -1,
          health_check: { type: 'port', data: { timeout: null, invocation_timeout: null } },
          relationships: { app: { data: { guid: app.guid } } },
          links: { self: { href: `${this.ccUrl}/v3/processes/${app.guid}-${type}` } },
        });
      }
      return notFound(response, 'Resource');
    }
    if ((match = /^\/v3\/droplets\/([^/]+)\/download$/.exec(url.pathname)) !== null) {
      const droplet = this.droplets.find((candidate) => candidate.guid === match?.[1]);
      if (droplet === undefined) return notFound(response, 'Droplet');
      if (droplet.state !== 'STAGED' || droplet.lifecycle === 'docker') {
        return send(response, 422, { errors: [{ detail: 'Only staged buildpack droplets can be downloaded.', title: 'CF-UnprocessableEntity', code: 10008 }] });
      }
      response.writeHead(302, { location: `${this.blobstoreUrl}/droplets/${droplet.guid}?signature=${signatureOf(droplet.guid)}`, 'content-length': 0 });
      response.end();
      return;
    }
    return notFound(response, 'Resource');
  }

  #list(response: ServerResponse, url: URL, resources: unknown[]): void {
    const perPage = Math.min(Number(url.searchParams.get('per_page') ?? 50), this.maxPerPage);
    const page = Number(url.searchParams.get('page') ?? 1);
    const totalPages = Math.max(1, Math.ceil(resources.length / perPage));
    const link = (number: number) => {
      const target = new URL(url);
      target.searchParams.set('page', String(number));
      target.searchParams.set('per_page', String(perPage));
      return { href: target.href };
    };
    send(response, 200, {
      pagination: {
        total_results: resources.length,
        total_pages: totalPages,
        first: link(1),
        last: link(totalPages),
        next: page < totalPages ? link(page + 1) : null,
        previous: page > 1 ? link(page - 1) : null,
      },
      resources: resources.slice((page - 1) * perPage, page * perPage),
    });
  }

  #named(resource: Resource, collection: string): unknown {
    const named: Record<string, unknown> = {
      guid: resource.guid,
      name: resource.name,
      created_at: '2024-01-01T00:00:00Z',
      links: { self: { href: `${this.ccUrl}/v3/${collection}/${resource.guid}` } },
    };
    // A space names its organization, as v3 resources name their parents.
    if (collection === 'spaces') named['relationships'] = { organization: { data: { guid: resource.parent ?? null } } };
    return named;
  }

  #app(app: StubApp): unknown {
    return {
      guid: app.guid,
      name: app.name,
      state: 'STARTED',
      lifecycle: { type: 'buildpack', data: { buildpacks: [], stack: 'cflinuxfs4' } },
      relationships: { space: { data: { guid: app.spaceGuid } } },
      links: { self: { href: `${this.ccUrl}/v3/apps/${app.guid}` } },
    };
  }

  #droplet(droplet: StubDroplet): unknown {
    const bits = droplet.bits ?? Buffer.alloc(0);
    const checksum =
      droplet.checksum === 'sha1'
        ? { type: 'sha1', value: createHash('sha1').update(bits).digest('hex') }
        : droplet.checksum === 'wrong'
          ? { type: 'sha256', value: 'f'.repeat(64) }
          : { type: 'sha256', value: createHash('sha256').update(bits).digest('hex') };
    const docker = droplet.lifecycle === 'docker';
    return {
      guid: droplet.guid,
      created_at: droplet.createdAt,
      updated_at: droplet.createdAt,
      state: droplet.state,
      error: null,
      lifecycle: { type: docker ? 'docker' : 'buildpack', data: {} },
      execution_metadata: '',
      process_types: { ...(droplet.processTypes ?? {}), ...(droplet.webProcessType === undefined ? {} : { web: droplet.webProcessType }) },
      checksum: docker ? null : checksum,
      buildpacks: [],
      stack: 'cflinuxfs4',
      image: docker ? 'example/app:1' : null,
      metadata: { labels: {}, annotations: {} },
      links: {
        self: { href: `${this.ccUrl}/v3/droplets/${droplet.guid}` },
        app: { href: `${this.ccUrl}/v3/apps/${droplet.appGuid}` },
        download: { href: `${this.ccUrl}/v3/droplets/${droplet.guid}/download` },
      },
    };
  }
}

function signatureOf(guid: string): string {
  return createHash('sha256').update(`signed:${guid}`).digest('hex').slice(0, 16);
}

/** A loopback port nothing listens on (taken, then released). */
export async function closedPort(): Promise<number> {
  const { server } = await listen(() => undefined);
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function listen(handler: (request: IncomingMessage, response: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

function sendXml(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

function notFound(response: ServerResponse, what: string): void {
  send(response, 404, { errors: [{ detail: `${what} not found`, title: 'CF-ResourceNotFound', code: 10010 }] });
}
