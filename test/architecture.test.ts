import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => (entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : Promise.resolve(entry.name.endsWith('.ts') ? [join(dir, entry.name)] : []))),
  );
  return nested.flat();
}

/** Every import of a file: relative ones as paths under src/, packages by name. */
async function importsOf(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8');
  const specifiers = [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((match) => match[1] as string);
  return specifiers.map((specifier) => (specifier.startsWith('.') ? relative(src, resolve(dirname(file), specifier)) : specifier));
}

const files = await sourceFiles(src);
const folderOf = (file: string) => relative(src, file).split('/')[0] as string;

describe('dependencies point downward (docs/architecture.md)', () => {
  it('oci/ and errors/ import nothing of ours but each other', async () => {
    for (const file of files.filter((path) => ['oci', 'errors'].includes(folderOf(path)))) {
      for (const target of await importsOf(file)) {
        if (target.startsWith('node:')) continue;
        assert.ok(/^(oci|errors)\//.test(target), `${relative(root, file)} imports ${target}`);
      }
    }
  });

  it('registry/ knows the store interfaces, never a driver', async () => {
    for (const file of files.filter((path) => folderOf(path) === 'registry')) {
      for (const target of await importsOf(file)) {
        assert.ok(!/^(blobs|meta)\/[^/]+\//.test(target), `${relative(root, file)} imports the driver ${target}`);
        assert.ok(!/^(pg|@aws-sdk\/|fastify)/.test(target), `${relative(root, file)} imports ${target}`);
        assert.ok(!/^(http|server|cli)[/.]/.test(target), `${relative(root, file)} imports upward: ${target}`);
      }
    }
  });

  it('http/ knows registry and sources, never a driver or an SDK', async () => {
    for (const file of files.filter((path) => folderOf(path) === 'http')) {
      for (const target of await importsOf(file)) {
        assert.ok(!/^(blobs|meta)\/[^/]+\//.test(target), `${relative(root, file)} imports the driver ${target}`);
        assert.ok(!/^(pg|@aws-sdk\/|node:sqlite)/.test(target), `${relative(root, file)} imports ${target}`);
        assert.ok(!/^(server|cli)[/.]/.test(target), `${relative(root, file)} imports upward: ${target}`);
      }
    }
  });

  it('ui/ knows interfaces, never a driver or an SDK', async () => {
    for (const file of files.filter((path) => folderOf(path) === 'ui')) {
      for (const target of await importsOf(file)) {
        assert.ok(!/^(blobs|meta)\/[^/]+\//.test(target), `${relative(root, file)} imports the driver ${target}`);
        assert.ok(!/^(pg|@aws-sdk\/|node:sqlite)/.test(target), `${relative(root, file)} imports ${target}`);
        assert.ok(!/^(server|cli|sources)[/.]/.test(target), `${relative(root, file)} imports ${target}`);
      }
    }
  });

  it('only config/ reads the environment', async () => {
    for (const file of files.filter((path) => folderOf(path) !== 'config')) {
      const text = await readFile(file, 'utf8');
      assert.doesNotMatch(text, /process\.env\b/, `${relative(root, file)} reads process.env`);
    }
  });

  it('source files stay under about 450 lines', async () => {
    for (const file of files) {
      const lines = (await readFile(file, 'utf8')).split('\n').length;
      assert.ok(lines <= 500, `${relative(root, file)} has ${lines} lines`);
    }
  });
});
