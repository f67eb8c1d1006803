import type { RepositoryName } from '../../oci/names.ts';
import { parseRepositoryName } from '../../oci/names.ts';

/**
 * Maps a request that names its registry with `?ns=` (containerd's mirror
 * convention: `GET /v2/library/alpine/manifests/3?ns=docker.io`) to the
 * cache prefix serving that registry. Unknown namespaces, and names that
 * already carry the prefix, are left as they are.
 */
export function namespaceResolver(entries: readonly { prefix: string; namespaces: readonly string[] }[]): (name: RepositoryName, namespace: string) => RepositoryName {
  const byNamespace = new Map<string, string>();
  for (const entry of entries) for (const namespace of entry.namespaces) byNamespace.set(namespace.toLowerCase(), entry.prefix);
  return (name, namespace) => {
    const prefix = byNamespace.get(namespace.toLowerCase());
    if (prefix === undefined || prefix === '' || name.startsWith(prefix)) return name;
    return parseRepositoryName(`${prefix}${name}`);
  };
}
