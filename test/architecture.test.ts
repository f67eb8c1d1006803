import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

/**
 * What each part of src/ may import besides itself (docs/architecture.md),
 * as go-containerregistry's depcheck does: a new import that is not listed
 * here fails the day it is written. A part is a folder, a driver or kind
 * subfolder, or a top-level file; the most specific part containing a file
 * applies. Targets are path prefixes under src/ (a folder ends in `/`) or
 * `pkg:` package names; Node's built-ins are free except `node:sqlite`.
 */
const base = ['oci/', 'errors/', 'io/'];
const stores = ['blobs/blob-store.ts', 'meta/meta-store.ts', 'meta/operations-store.ts', 'meta/change-log.ts'];
const metaShared = [
  'meta/meta-store.ts',
  'meta/operations-store.ts',
  'meta/change-log.ts',
  'meta/rows.ts',
  'meta/cursors.ts',
  'meta/droplet-store.ts',
  'meta/droplet-rows.ts',
  'meta/browse-index.ts',
];
export const allowed: Record<string, readonly string[]> = {
  errors: [],
  oci: ['errors/'],
  // undici: HTTP to user-configured hosts on any port (the global fetch refuses the Fetch standard's bad ports).
  io: ['errors/', 'oci/', 'log.ts', 'pkg:@aws-sdk/client-s3', 'pkg:undici'],
  config: ['pkg:zod', 'pkg:yaml'],
  'log.ts': ['pkg:pino'],
  archives: [...base, 'meta/meta-store.ts'],
  blobs: [...base],
  'blobs/fs': [...base, 'blobs/blob-store.ts'],
  'blobs/s3': [...base, 'blobs/blob-store.ts', 'pkg:@aws-sdk/client-s3', 'pkg:@aws-sdk/s3-request-presigner'],
  meta: [...base],
  'meta/sqlite': [...base, ...metaShared, 'pkg:node:sqlite'],
  'meta/postgres': [...base, ...metaShared, 'pkg:pg'],
  registry: [...base, ...stores],
  client: [...base, 'blobs/blob-store.ts'],
  auth: [...base, 'config/', 'http/access.ts', 'pkg:fastify', 'pkg:jose', 'pkg:bcryptjs', 'pkg:yaml', 'pkg:zod', 'pkg:pino'],
  tls: [...base, 'pkg:@peculiar/x509', 'pkg:reflect-metadata'],
  http: [...base, ...stores, 'registry/', 'pkg:fastify', 'pkg:@fastify/proxy-addr', 'pkg:pino'],
  gc: [...base, ...stores, 'log.ts'],
  policy: [...base, ...stores, 'config/', 'log.ts', 'gc/blob-guard.ts', 'registry/write-policy.ts'],
  events: [...base, ...stores, 'config/', 'log.ts', 'policy/globs.ts'],
  metrics: ['registry/cache-metrics.ts', 'pkg:prom-client'],
  ops: [...base, ...stores, 'config/', 'log.ts', 'registry/', 'gc/', 'policy/', 'events/', 'metrics/', 'http/', 'pkg:fastify'],
  'sources/archive': [...base, ...stores, 'registry/', 'archives/', 'config/', 'log.ts', 'pkg:tar-stream'],
  'sources/proxy': [...base, ...stores, 'registry/', 'client/', 'config/', 'log.ts', 'gc/blob-guard.ts', 'metrics/proxy-metrics.ts', 'policy/globs.ts'],
  // The droplet kind keeps its records in the DropletStore, beside the MetaStore on the same database.
  'sources/droplet': [...base, ...stores, 'meta/droplet-store.ts', 'registry/', 'config/', 'log.ts', 'pkg:tar-stream', 'pkg:yaml'],
  copy: [...base, 'blobs/blob-store.ts', 'meta/meta-store.ts', 'archives/', 'client/', 'config/', 'policy/globs.ts', 'pkg:commander', 'pkg:tar-stream', 'pkg:@aws-sdk/client-s3'],
  'access-tls-limits.ts': [...base, 'config/', 'http/app.ts', 'http/access.ts', 'http/server-options.ts', 'auth/', 'tls/', 'pkg:pino'],
  // The wiring: the only place that picks concrete drivers.
  'server.ts': [
    ...base,
    ...stores,
    'blobs/',
    'meta/',
    'config/',
    'registry/',
    'sources/',
    'http/',
    'metrics/',
    'ops/',
    'access-tls-limits.ts',
    'passes-in-threads.ts',
    'ui-server.ts',
    'health/',
    'log.ts',
    'pkg:fastify',
    'pkg:pino',
    'pkg:pino-pretty',
  ],
  // Scheduled passes on the embedded store, each in a thread that opens the registry as `berth gc` does.
  'passes-in-threads.ts': [...base, 'config/', 'gc/', 'ops/', 'policy/'],
  'pass-thread.ts': ['config/', 'gc/background-priority.ts', 'passes-in-threads.ts', 'server.ts'],
  // Readiness: background checks of the stores, through the probes the wiring hands it.
  health: ['errors/'],
  // The web UI and its JSON API: interfaces only, never a driver or an SDK.
  ui: [...base, ...stores, 'meta/browse-index.ts', 'registry/', 'http/', 'auth/', 'config/', 'policy/', 'ops/', 'log.ts', 'pkg:fastify'],
  'ui-server.ts': [...base, ...stores, 'meta/browse-index.ts', 'ui/', 'server.ts', 'registry/', 'http/', 'auth/', 'config/', 'ops/', 'sources/', 'log.ts', 'pkg:fastify'],
  // Worker threads of `berth serve`: each opens the registry through the wiring.
  workers: [...base, 'config/', 'server.ts', 'log.ts'],
  cli: [...base, 'config/', 'server.ts', 'workers/', 'access-tls-limits.ts', 'auth/', 'tls/', 'copy/', 'gc/', 'policy/', 'sources/', 'log.ts', 'pkg:commander'],
};

const maxLines = 450;

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : Promise.resolve(entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []))),
  );
  return nested.flat();
}

/**
 * Every module a source text names: `import … from`, `export … from`,
 * bare `import '…'`, `import('…')` (calls and type positions), and
 * `require('…')` (also through `createRequire(…)`). An `import()` or
 * `require()` of anything but a string literal is reported as `<computed>`.
 */
export function specifiersOf(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm)) found.push(match[1] as string);
  for (const match of text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) found.push(match[1] as string);
  // A literal, or a name or template (`async import(file: string)` declares a method instead).
  for (const match of text.matchAll(/(?<![.\w$])import\s*\(\s*(?:['"]([^'"]+)['"]\s*\)|[\w$.]+\s*\)|`)/g)) found.push(match[1] ?? '<computed>');
  // CommonJS loading, which a bundle-only dependency may need (`daemon.require(tag)` is a method call, not this).
  for (const match of text.matchAll(/(?<![.\w$])(?:require|createRequire\([^)]*\))\s*\(\s*(?:['"]([^'"]+)['"]\s*\)|[\w$.]+\s*\)|`)/g)) found.push(match[1] ?? '<computed>');
  return found;
}

/** The part of src/ a path belongs to: the longest key of `allowed` containing it. */
export function partOf(path: string): string | undefined {
  let best: string | undefined;
  for (const key of Object.keys(allowed)) {
    if ((path === key || path.startsWith(`${key}/`)) && (best === undefined || key.length > best.length)) best = key;
  }
  return best;
}

/** The imports of `path` (under src/) that its part may not make, as messages. */
export function violationsOf(path: string, text: string): string[] {
  const part = partOf(path);
  if (part === undefined) return [`${path} belongs to no part listed in test/architecture.test.ts`];
  const rules = allowed[part] ?? [];
  const problems: string[] = [];
  for (const specifier of specifiersOf(text)) {
    if (specifier === '<computed>') {
      problems.push(`${path} imports a computed module name`);
      continue;
    }
    if (specifier.startsWith('.')) {
      const target = relative(src, resolve(dirname(join(src, path)), specifier));
      if (partOf(target) === part) continue;
      if (!rules.some((rule) => target === rule || (rule.endsWith('/') && target.startsWith(rule)) || target.startsWith(`${rule}/`))) {
        problems.push(`${path} (${part}) may not import ${target}`);
      }
      continue;
    }
    if (specifier.startsWith('node:') && specifier !== 'node:sqlite') continue;
    const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : (specifier.split('/')[0] as string);
    if (!rules.includes(`pkg:${name}`)) problems.push(`${path} (${part}) may not import the package ${name}`);
  }
  return problems;
}

const files = await sourceFiles(src);

describe('dependencies point downward (docs/architecture.md)', () => {
  it('every import of src/ is on its part’s allowlist', async () => {
    const problems: string[] = [];
    for (const file of files) problems.push(...violationsOf(relative(src, file), await readFile(file, 'utf8')));
    assert.deepEqual(problems, []);
  });

  it('the check sees static, re-exported, bare and dynamic imports', () => {
    assert.deepEqual(violationsOf('oci/x.ts', "import { a } from '../http/app.ts';"), ['oci/x.ts (oci) may not import http/app.ts']);
    assert.deepEqual(violationsOf('oci/x.ts', "import {\n  a,\n  b,\n} from '../http/app.ts';"), ['oci/x.ts (oci) may not import http/app.ts']);
    assert.deepEqual(violationsOf('oci/x.ts', "export { a } from '../http/app.ts';"), ['oci/x.ts (oci) may not import http/app.ts']);
    assert.deepEqual(violationsOf('oci/x.ts', "export * from 'fastify';"), ['oci/x.ts (oci) may not import the package fastify']);
    assert.deepEqual(violationsOf('oci/x.ts', "import 'reflect-metadata';"), ['oci/x.ts (oci) may not import the package reflect-metadata']);
    assert.deepEqual(violationsOf('auth/x.ts', "const m = await import('../access-tls-limits.ts');"), ['auth/x.ts (auth) may not import access-tls-limits.ts']);
    assert.deepEqual(violationsOf('auth/x.ts', 'const m = await import(name);'), ['auth/x.ts imports a computed module name']);
    assert.deepEqual(violationsOf('registry/x.ts', "type S = import('../meta/sqlite/database.ts').Database;"), ['registry/x.ts (registry) may not import meta/sqlite/database.ts']);
    assert.deepEqual(violationsOf('http/x.ts', "import { DatabaseSync } from 'node:sqlite';"), ['http/x.ts (http) may not import the package node:sqlite']);
    assert.deepEqual(violationsOf('meta/meta-store.ts', "import { x } from './sqlite/database.ts';"), ['meta/meta-store.ts (meta) may not import meta/sqlite/database.ts']);
    assert.deepEqual(violationsOf('meta/sqlite/x.ts', "import { x } from '../meta-store.ts';\nimport { y } from './rows.ts';"), []);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the source text under test holds a template
    assert.deepEqual(violationsOf('auth/x.ts', 'const m = await import(`../${name}.ts`);'), ['auth/x.ts imports a computed module name']);
    assert.deepEqual(violationsOf('sources/droplet/x.ts', 'await rootfs.import(file);\nasync import(file: string) {}'), []);
    assert.deepEqual(violationsOf('http/x.ts', "const p = createRequire(import.meta.url)('pino-pretty');"), ['http/x.ts (http) may not import the package pino-pretty']);
    assert.deepEqual(violationsOf('http/x.ts', "const m = require('../meta/sqlite/database.ts');"), ['http/x.ts (http) may not import meta/sqlite/database.ts']);
    assert.deepEqual(violationsOf('http/x.ts', 'const m = require(name);'), ['http/x.ts imports a computed module name']);
    assert.deepEqual(violationsOf('copy/x.ts', 'await daemon.require(tag, signal);\nasync require(tag: Tag) {}'), []);
    assert.deepEqual(violationsOf('nowhere/x.ts', ''), ['nowhere/x.ts belongs to no part listed in test/architecture.test.ts']);
  });

  it('only config/ reads the environment', async () => {
    for (const file of files.filter((path) => partOf(relative(src, path)) !== 'config')) {
      const text = await readFile(file, 'utf8');
      assert.doesNotMatch(text, /process\.env\b/, `${relative(root, file)} reads process.env`);
    }
  });

  it(`source files stay under ${maxLines} lines`, async () => {
    for (const file of files) {
      const lines = (await readFile(file, 'utf8')).split('\n').length;
      assert.ok(lines <= maxLines, `${relative(root, file)} has ${lines} lines`);
    }
  });
});
