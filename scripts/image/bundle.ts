import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';

/** The repository this script lives in. */
export const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

/** What a bundle holds: the CLI entry and the worker scripts it starts, all in one flat directory. */
export const bundleEntry = 'main.mjs';

/**
 * `new Worker(new URL('./x.ts', import.meta.url))`: a worker started from
 * its own file. The bundle makes each such file an entry of its own and
 * points the URL at the bundled `.mjs` beside the chunk that starts it.
 */
const workerUrl = /new URL\((['"])\.\/([\w-]+)\.ts\1, import\.meta\.url\)/g;

/**
 * Bundles Berth for production (docs/decisions.md, "Production build"):
 * `src/cli/main.ts` and its workers, minified (names kept, for error
 * classes and stack traces), split at the dynamic imports so that S3,
 * PostgreSQL and TLS code still load only when configured. The output is
 * plain ESM with no node_modules beside it, and the same bytes for the
 * same sources.
 */
export async function bundleBerth(outDir: string): Promise<string[]> {
  // An earlier bundle's files go (their names change with their content); nothing else in the directory is touched.
  await mkdir(outDir, { recursive: true });
  for (const name of await readdir(outDir)) if (name.endsWith('.mjs')) await rm(join(outDir, name));
  const src = join(projectRoot, 'src');
  const workers = await workerFiles(src);
  const result = await build({
    absWorkingDir: projectRoot,
    entryPoints: [join(src, 'cli', 'main.ts'), ...workers],
    outdir: outDir,
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    outExtension: { '.js': '.mjs' },
    // pg's optional native binding; pg falls back to JavaScript without it.
    external: ['pg-native'],
    // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
    banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
    plugins: [workerUrls(), leftOut()],
    logLevel: 'error',
    metafile: true,
  });
  await writeFile(join(outDir, noticesFile), await thirdPartyNotices(Object.keys(result.metafile.inputs)));
  const assets = await copyAssets(outDir);
  return [...Object.keys(result.metafile.outputs).map((path) => relative(outDir, resolve(projectRoot, path))), noticesFile, ...assets].sort();
}

/**
 * Files modules read at run time from beside themselves
 * (`new URL('./assets/…', import.meta.url)`): the web UI's CSS and script.
 * The bundle's chunks all sit in one directory, so they go to `assets/` there.
 */
const assetDirs = ['src/ui/assets'];

async function copyAssets(outDir: string): Promise<string[]> {
  const copied: string[] = [];
  await rm(join(outDir, 'assets'), { recursive: true, force: true });
  await mkdir(join(outDir, 'assets'), { recursive: true });
  for (const dir of assetDirs) {
    for (const name of (await readdir(join(projectRoot, dir))).sort()) {
      await writeFile(join(outDir, 'assets', name), await readFile(join(projectRoot, dir, name)));
      copied.push(`assets/${name}`);
    }
  }
  return copied;
}

/** The licences of the npm packages inside the bundle, which carries no comments of its own. */
export const noticesFile = 'THIRD-PARTY-NOTICES';

async function thirdPartyNotices(inputs: readonly string[]): Promise<string> {
  const packages = new Set<string>();
  for (const input of inputs) {
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  const sections: string[] = [];
  for (const directory of [...packages].sort()) {
    const manifest = JSON.parse(await readFile(join(projectRoot, directory, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
    const licenseFile = (await readdir(join(projectRoot, directory))).find((name) => /^(licen[cs]e|copying|notice)/i.test(name));
    const text = licenseFile === undefined ? '' : await readFile(join(projectRoot, directory, licenseFile), 'utf8');
    sections.push(`${manifest.name} ${manifest.version} (${manifest.license ?? 'see the package'})\n\n${text.trim()}\n`);
  }
  return `Berth's bundle contains these npm packages.\n\n${sections.join('\n---\n\n')}`;
}

/** Source files started as workers (named in a `new URL('./x.ts', import.meta.url)`). */
async function workerFiles(src: string): Promise<string[]> {
  const found = new Set<string>();
  for (const entry of await readdir(src, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const text = await readFile(join(entry.parentPath, entry.name), 'utf8');
    for (const match of text.matchAll(workerUrl)) found.add(join(entry.parentPath, `${match[2]}.ts`));
  }
  return [...found].sort();
}

/**
 * Packages Berth never loads though a dependency names them: Fastify's JSON
 * schema compilers (ajv and fast-json-stringify, about 270 KB minified),
 * which Fastify requires only when no compilers are given, and src/http/app.ts
 * gives its own. Each is replaced by a module that throws if it is ever
 * loaded, so that a change that starts using them fails loudly.
 */
export const leftOutPackages = ['@fastify/ajv-compiler', '@fastify/fast-json-stringify-compiler'];

function leftOut(): Plugin {
  const names = new RegExp(`^(${leftOutPackages.map((name) => name.replace(/[/@.-]/g, (c) => `\\${c}`)).join('|')})$`);
  return {
    name: 'berth-left-out',
    setup(builder) {
      builder.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: 'berth-left-out' }));
      builder.onLoad({ filter: /.*/, namespace: 'berth-left-out' }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`${args.path} is left out of Berth's bundle (scripts/image/bundle.ts)`)});`,
        loader: 'js',
      }));
    },
  };
}

function workerUrls(): Plugin {
  return {
    name: 'berth-worker-urls',
    setup(builder) {
      builder.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        const contents = text.replace(workerUrl, (_match, quote: string, name: string) => `new URL(${quote}./${name}.mjs${quote}, import.meta.url)`);
        return contents === text ? undefined : { contents, loader: 'ts' };
      });
    },
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { output: { type: 'string', default: 'dist' } } });
  const outDir = resolve(values.output);
  const files = await bundleBerth(outDir);
  process.stdout.write(`${files.length} files in ${outDir}; run: node --max-semi-space-size=8 ${join(outDir, bundleEntry)} serve\n`);
}
