import type { ProxyRepositoryConfig } from '../../config/repositories.ts';
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

/** Docker Hub's registry host names: its mirrors serve the `docker.io` namespace and add `library/`. */
export const dockerHubHosts = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);

/** The `ns` values an entry serves: configured, or the upstream's host (docker.io for Docker Hub). */
export function proxyNamespaces(config: ProxyRepositoryConfig): string[] {
  if (config.namespaces !== undefined) return config.namespaces;
  const upstream = new URL(config.upstream);
  return dockerHubHosts.has(upstream.hostname) ? ['docker.io'] : [upstream.host];
}
