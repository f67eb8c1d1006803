import type { Config } from '../../config/schema.ts';
import type { RepositoryScope } from '../../meta/operations-store.ts';
import type { Budget } from './cache-budget.ts';

/**
 * The budgets the configuration asks for: one per cache with `maxBytes`,
 * and `proxyCache.maxBytes` over every cache. A cache's scope is the names
 * routed to it: its prefix, minus the longer prefixes of other entries
 * (which the router prefers).
 */
export function configuredBudgets(config: Config): Budget[] {
  const prefixes = config.repositories.map((entry) => entry.prefix);
  const caches = config.repositories.flatMap((entry) => (entry.kind === 'proxy' ? [entry] : []));
  const budgets: Budget[] = caches.flatMap((entry) =>
    entry.maxBytes === undefined ? [] : [{ name: entry.prefix, scope: routedScope([entry.prefix], prefixes), maxBytes: entry.maxBytes }],
  );
  const shared = config.proxyCache.maxBytes;
  if (shared !== undefined && caches.length > 0) {
    budgets.push({
      name: 'all',
      scope: routedScope(
        caches.map((entry) => entry.prefix),
        prefixes,
      ),
      maxBytes: shared,
    });
  }
  return budgets;
}

/** Names under any of `prefixes` that no longer configured prefix takes. */
export function routedScope(prefixes: readonly string[], all: readonly string[]): RepositoryScope {
  const alternatives = prefixes.map((prefix) => {
    const longer = all.filter((other) => other.length > prefix.length && other.startsWith(prefix));
    const exclusion = longer.length === 0 ? '' : `(?!(?:${longer.map(escape).join('|')}))`;
    return `${exclusion}${escapeDots(prefix)}.*`;
  });
  return { prefix: commonPrefix(prefixes), pattern: `^(?:${alternatives.join('|')})$` };
}

function escapeDots(literal: string): string {
  return literal.replace(/[.]/g, '\\.');
}

function commonPrefix(values: readonly string[]): string {
  let prefix = values[0] ?? '';
  for (const value of values.slice(1)) while (!value.startsWith(prefix)) prefix = prefix.slice(0, -1);
  return prefix;
}
