import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * In a fresh process: loads the server wiring, makes a logger with
 * `log.format` set to `format`, and says whether pino-pretty was loaded.
 */
async function prettyLoaded(format: 'json' | 'pretty'): Promise<boolean> {
  const script = `
    import { createRequire } from 'node:module';
    const { loadConfig } = await import('./src/config/load.ts');
    const { createLogger } = await import('./src/server.ts');
    const config = await loadConfig({ env: {}, overrides: { 'log.format': '${format}', 'log.level': 'silent' } });
    createLogger(config, 2);
    const cache = createRequire(import.meta.url).cache;
    console.log(Object.keys(cache).some((path) => path.includes('/node_modules/pino-pretty/')));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: root });
  return stdout.trim() === 'true';
}

describe('the logger', () => {
  it('loads pino-pretty only for readable lines, never for JSON lines', async () => {
    assert.equal(await prettyLoaded('json'), false, 'JSON logs do not load pino-pretty');
    assert.equal(await prettyLoaded('pretty'), true, 'readable logs do');
  });
});
