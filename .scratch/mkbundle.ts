import { bundleBerth } from '../scripts/image/bundle.ts';
await bundleBerth(process.argv[2] ?? '/tmp/bbundle-new');
