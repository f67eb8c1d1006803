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

/** Images read straight from OCI and Docker archives in a directory (docs/archives.md). */
export const archiveRepositories = z.strictObject({
  prefix,
  kind: z.literal('archive'),
  /** The directory holding the archives; the name rules apply relative to it. */
  directory: z.string().min(1),
  /** How often the whole directory is scanned again (changes made on other NFS clients are seen this way); 0 turns it off. */
  rescanInterval: duration.prefault('10m'),
  /** Rescan soon after a local change is reported by the kernel. */
  watch: z.boolean().default(true),
});

export const repositoryKinds = z.discriminatedUnion('kind', [hostedRepositories, archiveRepositories]);

export type RepositoryKindConfig = z.output<typeof repositoryKinds>;
