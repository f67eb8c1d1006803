import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import type { TokenCredentials, TokenGrant, TokenIssuer } from './access.ts';
import { mediaTypeOf, queryValue, queryValues, readLimitedBody } from './request-parts.ts';

/** A form with a scope list and credentials is small; anything larger is not a token request. */
const maxFormBytes = 16 * 1024;

/**
 * The token endpoint of the Docker registry token flow: `GET /token`
 * (Basic credentials or none; `scope` repeated; `offline_token=true` adds a
 * refresh token) and the OAuth2 form `POST /token` (grant_type `password`
 * or `refresh_token`), which containerd and docker try first.
 */
export function registerTokenEndpoint(app: FastifyInstance, issuer: TokenIssuer): void {
  app.get('/token', async (request, reply) => {
    const grant = await issuer.grant({
      credentials: basicCredentials(request),
      client: request.ip,
      scopes: queryValues(request.query, 'scope'),
      ...optional('service', queryValue(request.query, 'service')),
      offline: queryValue(request.query, 'offline_token') === 'true',
    });
    return sendGrant(reply, grant, false);
  });

  app.post('/token', async (request, reply) => {
    if (mediaTypeOf(request.headers['content-type']) !== 'application/x-www-form-urlencoded') {
      throw new RegistryError('UNSUPPORTED', 'POST /token takes an application/x-www-form-urlencoded form', { status: 400 });
    }
    const form = new URLSearchParams((await readLimitedBody(request.raw, maxFormBytes, 'token request')).toString('utf8'));
    const grant = await issuer.grant({
      credentials: formCredentials(form),
      client: request.ip,
      scopes: form.getAll('scope'),
      ...optional('service', form.get('service') ?? undefined),
      offline: form.get('access_type') === 'offline',
    });
    return sendGrant(reply, grant, true);
  });

  app.get('/token/jwks.json', async (_request, reply) => reply.header('content-type', 'application/json').send(JSON.stringify(issuer.jwks())));
}

function basicCredentials(request: FastifyRequest): TokenCredentials {
  const header = request.headers.authorization;
  if (header === undefined || header === '') return { kind: 'anonymous' };
  const match = /^basic\s+(\S+)$/i.exec(header.trim());
  const decoded = match === null ? '' : Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // Malformed or non-Basic credentials fail the password check like wrong ones.
  if (colon <= 0) return { kind: 'password', user: '', password: '' };
  return { kind: 'password', user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function formCredentials(form: URLSearchParams): TokenCredentials {
  const grantType = form.get('grant_type');
  if (grantType === 'password') {
    return { kind: 'password', user: form.get('username') ?? '', password: form.get('password') ?? '' };
  }
  if (grantType === 'refresh_token') return { kind: 'refresh', token: form.get('refresh_token') ?? '' };
  throw new RegistryError('UNSUPPORTED', `unsupported grant_type "${(grantType ?? '').slice(0, 40)}": use password or refresh_token`, {
    status: 400,
  });
}

function sendGrant(reply: FastifyReply, grant: TokenGrant, oauth: boolean): FastifyReply {
  const body: Record<string, unknown> = {
    token: grant.token,
    access_token: grant.token,
    expires_in: grant.expiresIn,
    issued_at: grant.issuedAt.toISOString(),
  };
  if (oauth) body['scope'] = grant.scope;
  if (grant.refreshToken !== undefined) body['refresh_token'] = grant.refreshToken;
  return reply.headers({ 'content-type': 'application/json', 'cache-control': 'no-store', pragma: 'no-cache' }).send(JSON.stringify(body));
}

function optional<K extends string>(key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, string>);
}
