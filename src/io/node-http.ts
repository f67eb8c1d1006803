import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * `node:http`, required rather than imported: an ES import of a built-in
 * makes Node evaluate every export of it, and among node:http's are lazy
 * ones that load Node's own fetch implementation (undici), about 30 ms of
 * every start for nothing (docs/decisions.md, "node:http required").
 */
export const http: typeof import('node:http') = require('node:http');

/** `node:https`, on first use: it loads TLS. */
export function https(): typeof import('node:https') {
  return require('node:https');
}
