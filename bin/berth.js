#!/usr/bin/env -S node --max-semi-space-size=1
// The V8 flag keeps the young generation small: see docs/decisions.md ("Young generation").
// This line is the one place it is set: npm start, npm run berth and the benchmark run this file's flags.
// Node 24 runs the TypeScript sources directly (type stripping).
import { main } from '../src/cli/main.ts';

await main(process.argv);
