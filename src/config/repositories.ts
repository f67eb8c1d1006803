import { z } from 'zod';
import { duration } from './units.ts';

/**
 * A name prefix served by one repository kind. Names not matched by any
 * entry are hosted. Each kind adds its own options next to `kind`.
 */
const prefix = z
  .string()
  .regex(/^([a-z0-9]+([._-][a-z0-9]+)*\/)*$/, 'expected a repository name prefix ending in "/", such as "mirror/" (or "" for every name)');

export const hostedRepositories = z.strictObject({ prefix, kind: z.literal('hosted') });

/**
 * A pull-through cache of another registry (docs/proxy.md): names under
 * `prefix` are fetched from `upstream` on first pull and kept as hosted
 * content; tags are re-checked after `tagTtl`, and served from the cache
 * when the upstream fails.
 */
export const proxyRepositories = z.strictObject({
  prefix,
  kind: z.literal('proxy'),
  /** The upstream registry's API, such as https://registry-1.docker.io or https://ghcr.io. */
  upstream: z.url({ protocol: /^https?$/, error: 'expected the upstream registry as an http(s) URL, such as https://ghcr.io' }),
  /** Single-component names are official images under `library/` (Docker Hub); default: on for Docker Hub. */
  officialImages: z.boolean().optional(),
  /** The `ns` query values (containerd registry namespaces) this cache serves; default: the upstream's host, docker.io for Docker Hub. */
  namespaces: z.array(z.string().min(1)).optional(),
  username: z.string().min(1).optional(),
  password: z.string().optional(),
  /** A file holding the password (for secrets mounted as files). */
  passwordFile: z.string().min(1).optional(),
  /** A docker/podman auth file to take the upstream's credentials from. */
  authFile: z.string().min(1).optional(),
  /** How long a cached tag is served before the upstream is asked again. */
  tagTtl: duration.prefault('5m'),
  /** After the upstream fails, how long cached tags are served without asking it again. */
  failureBackoff: duration.prefault('30s'),
  /** How long to wait for the upstream's response headers, or for more bytes of a blob. */
  timeout: duration.prefault('30s'),
  /** Whether clients may push to names under the prefix (stored as hosted content). */
  pushes: z.boolean().default(false),
});

export type ProxyRepositoryConfig = z.output<typeof proxyRepositories>;

export const repositoryKinds = z.discriminatedUnion('kind', [hostedRepositories, proxyRepositories]);

export type RepositoryKindConfig = z.output<typeof repositoryKinds>;
