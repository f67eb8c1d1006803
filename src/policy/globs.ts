/**
 * Globs for repository names and tags, as the operations configuration
 * writes them. Repository globs: `*` stays within one path component, `**`
 * crosses components (`team/**` is everything below team/, `**\/app` any
 * repository named app), `?` is one character. Tag globs: `*` is any run,
 * `?` one character.
 */

import type { RepositoryScope } from '../meta/operations-store.ts';

/** The scope of repository globs; its pattern uses only syntax JavaScript and PostgreSQL share. */
export function repositoryScope(globs: readonly string[]): RepositoryScope {
  return { prefix: commonLiteralPrefix(globs), pattern: `^(?:${globs.map(repositoryGlobSource).join('|')})$` };
}

/** The scope of exactly these repositories. */
export function exactScope(names: readonly string[]): RepositoryScope {
  return { prefix: '', pattern: `^(?:${names.map((name) => name.replace(/[.+?^${}()|[\]\\*-]/g, '\\$&')).join('|')})$` };
}

/** A predicate over names, for code that has the names in hand. */
export function scopeMatcher(scope: RepositoryScope): (name: string) => boolean {
  const expression = new RegExp(scope.pattern);
  return (name) => name.startsWith(scope.prefix) && expression.test(name);
}

export function tagMatcher(globs: readonly string[]): (tag: string) => boolean {
  if (globs.length === 0) return () => false;
  const expression = new RegExp(`^(?:${globs.map(tagGlobSource).join('|')})$`);
  return (tag) => expression.test(tag);
}

function repositoryGlobSource(glob: string): string {
  let source = '';
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index] as string;
    if (glob.startsWith('**/', index)) {
      source += '(?:.*/)?';
      index += 2;
    } else if (glob.startsWith('**', index)) {
      source += '.*';
      index += 1;
    } else if (char === '*') {
      source += '[^/]*';
    } else if (char === '?') {
      source += '[^/]';
    } else {
      source += escapeCharacter(char);
    }
  }
  return source;
}

function tagGlobSource(glob: string): string {
  return [...glob].map((char) => (char === '*' ? '.*' : char === '?' ? '.' : escapeCharacter(char))).join('');
}

function escapeCharacter(char: string): string {
  return /[a-zA-Z0-9_/-]/.test(char) ? char : `\\${char}`;
}

function commonLiteralPrefix(globs: readonly string[]): string {
  const literals = globs.map((glob) => glob.slice(0, firstWildcard(glob)));
  let prefix = literals[0] ?? '';
  for (const literal of literals.slice(1)) {
    while (!literal.startsWith(prefix)) prefix = prefix.slice(0, -1);
  }
  return prefix;
}

function firstWildcard(glob: string): number {
  const index = glob.search(/[*?]/);
  return index === -1 ? glob.length : index;
}
