import { scopeMatcher, repositoryScope } from '../policy/globs.ts';
import { copyExitCodes, classifyFailure } from './exit-codes.ts';
import { LocationError } from './location.ts';
import { listCatalog } from './open-store.ts';
import type { SyncOptions } from './run.ts';

/** `docker://HOST` or `docker://HOST/`: a registry named without a repository. */
export function wholeRegistry(text: string): string | undefined {
  const match = /^docker:\/\/([^/]+)\/?$/.exec(text);
  const host = match?.[1];
  if (host === undefined) return undefined;
  return host.includes('.') || host.includes(':') || host === 'localhost' ? host : undefined;
}

/**
 * `berth sync docker://HOST DESTINATION`: every repository the registry's
 * catalog lists (those matching `include` and none of `exclude`), each
 * synced to the destination under its own name — `docker://dest/mirror`
 * receives `mirror/<repository>`, `oci:DIR` gets `DIR/<repository>`.
 * A failing repository does not stop the others.
 */
export async function mirrorRegistry(
  registry: string,
  destinationText: string,
  options: SyncOptions,
  syncOne: (source: string, destination: string, options: SyncOptions) => Promise<number>,
): Promise<number> {
  const { reporter } = options;
  let names: string[];
  try {
    if (wholeRegistry(destinationText) === undefined && !/^(docker:\/\/|oci:|s3:\/\/)/.test(destinationText)) {
      throw new LocationError(`"${destinationText}": a whole registry is mirrored to docker://HOST[/PREFIX], oci:DIR or s3://BUCKET/PREFIX`);
    }
    names = await listCatalog(registry, options.source, options.signal);
  } catch (error) {
    const { exitCode, code } = classifyFailure(error);
    reporter.report({ event: 'image-failed', source: `docker://${registry}`, destination: destinationText, code, message: (error as Error).message, exitCode });
    return exitCode;
  }
  const included = options.include === undefined || options.include.length === 0 ? () => true : scopeMatcher(repositoryScope(options.include));
  const excluded = options.exclude === undefined || options.exclude.length === 0 ? () => false : scopeMatcher(repositoryScope(options.exclude));
  const selected = names.filter((name) => included(name) && !excluded(name)).sort();
  const base = destinationText.replace(/\/+$/, '');
  const totals = { repositories: selected.length, synced: 0, failed: 0 };
  let worst: number = copyExitCodes.ok;
  for (const name of selected) {
    if (options.signal?.aborted === true) break;
    const destination = base.endsWith(':') ? `${base}${name}` : `${base}/${name}`;
    const code = await syncOne(`docker://${registry}/${name}`, destination, { ...options, include: [], exclude: [] });
    if (code === copyExitCodes.ok) totals.synced += 1;
    else {
      totals.failed += 1;
      if (worst === copyExitCodes.ok) worst = code;
    }
  }
  reporter.report({ event: 'mirror-done', ...totals });
  if (options.signal?.aborted === true) return copyExitCodes.interrupted;
  if (totals.failed === 0) return copyExitCodes.ok;
  return totals.synced > 0 ? copyExitCodes.partial : worst;
}
