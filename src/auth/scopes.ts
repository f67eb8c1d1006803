import type { AccessEntry } from './tokens.ts';

/** Resources one token may name at most. */
export const maxScopes = 100;

/**
 * Parses scope strings (`repository:team/app:pull,push`,
 * `registry:catalog:*`), each possibly holding several separated by
 * spaces. The name sits between the first and the last colon, since a
 * name may carry a host with a port. A resource class
 * (`repository(plugin)`) is ignored, as Distribution does now. Malformed
 * scopes are dropped: the token server grants nothing for them rather
 * than failing the whole request.
 */
export function parseScopes(values: readonly string[]): AccessEntry[] {
  const merged = new Map<string, AccessEntry>();
  for (const value of values) {
    for (const scope of value.split(' ')) {
      // A token covers what one operation needs: a few repositories, not thousands.
      if (merged.size >= maxScopes) break;
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      if (first <= 0 || last === first) continue;
      const type = scope.slice(0, first).replace(/\([a-z0-9]+\)$/, '');
      const name = scope.slice(first + 1, last);
      const actions = scope
        .slice(last + 1)
        .split(',')
        .filter((action) => /^[a-z*]+$/.test(action));
      if (!/^[a-z0-9]+$/.test(type) || name === '' || actions.length === 0) continue;
      const key = `${type}:${name}`;
      const entry = merged.get(key) ?? { type, name, actions: [] };
      for (const action of actions) if (!entry.actions.includes(action)) entry.actions.push(action);
      merged.set(key, entry);
    }
  }
  return [...merged.values()];
}

/** The scope string of one access entry. */
export function formatScope(entry: AccessEntry): string {
  return `${entry.type}:${entry.name}:${entry.actions.join(',')}`;
}
