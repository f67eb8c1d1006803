import type { ProxyRepositoryConfig } from '../../config/repositories.ts';

/** Docker Hub's registry host names: its mirrors serve the `docker.io` namespace and add `library/`. */
export const dockerHubHosts = new Set(['registry-1.docker.io', 'index.docker.io', 'docker.io']);

/** The `ns` values an entry serves: configured, or the upstream's host (docker.io for Docker Hub). */
export function proxyNamespaces(config: ProxyRepositoryConfig): string[] {
  if (config.namespaces !== undefined) return config.namespaces;
  const upstream = new URL(config.upstream);
  return dockerHubHosts.has(upstream.hostname) ? ['docker.io'] : [upstream.host];
}
