import { z } from 'zod';

/**
 * A name prefix served by one repository kind. Names not matched by any
 * entry are hosted. Each kind adds its own options next to `kind`.
 */
const prefix = z
  .string()
  .regex(/^([a-z0-9]+([._-][a-z0-9]+)*\/)*$/, 'expected a repository name prefix ending in "/", such as "mirror/" (or "" for every name)');

export const hostedRepositories = z.strictObject({ prefix, kind: z.literal('hosted') });

export const repositoryKinds = z.discriminatedUnion('kind', [hostedRepositories]);

export type RepositoryKindConfig = z.output<typeof repositoryKinds>;
