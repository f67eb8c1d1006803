#!/usr/bin/env -S node --max-semi-space-size=8
// The V8 flag sizes the young generation: see docs/decisions.md ("Young generation", and "back to 8 MiB").
// This line is the one place it is set: npm start, npm run berth and the benchmark run this file's flags.
// Node 24 runs the TypeScript sources directly (type stripping); an older Node is told so, not left
// with an error about a file extension.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `berth needs Node.js 24 or later, and this is ${process.version}.\n` +
      'Run it through npm (npm start, npm run berth -- <command>), which uses the Node the project pins, or put Node 24 first on PATH.\n',
  );
  process.exit(1);
}
const { main } = await import('../src/cli/main.ts');
await main(process.argv);
