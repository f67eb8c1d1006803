/**
 * The zod every schema of Berth is built with: `zod/mini`, whose functions
 * a bundler can leave out when unused (docs/decisions.md, "zod/mini for the
 * configuration"), with zod's English messages, which `zod/mini` does not
 * load by itself. Import it as `import * as z from './zod.ts'`.
 */
// `en` by name: `locales.en()` through the namespace keeps every locale in the bundle (+260 KB).
import { en } from 'zod/locales';
import { config } from 'zod/mini';

config(en());

export * from 'zod/mini';
