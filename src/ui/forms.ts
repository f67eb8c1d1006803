import type { FastifyRequest } from 'fastify';
import { RegistryError } from '../errors/registry-error.ts';
import { readAtMost } from '../io/bounded-read.ts';

/** Forms are small: a sign-in or a CSRF token. */
const maxFormBytes = 16 * 1024;

/** Reads an `application/x-www-form-urlencoded` body (what HTML forms send). */
export async function readForm(request: FastifyRequest): Promise<URLSearchParams> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new RegistryError('UNSUPPORTED', 'send the form as application/x-www-form-urlencoded', { status: 415 });
  }
  const body = await readAtMost(request.raw, maxFormBytes, () => new RegistryError('SIZE_INVALID', `forms are at most ${maxFormBytes} bytes`, { status: 413 }));
  return new URLSearchParams(body.toString('utf8'));
}

/** A path under /ui/ to go to after signing in; anything else (another site) becomes /ui/. */
export function localNext(next: string | null | undefined): string {
  return next !== null && next !== undefined && /^\/ui\/[^\\]*$/.test(next) && !next.startsWith('//') ? next : '/ui/';
}
