import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';

/** Options every command that opens the registry's stores accepts. */
export interface CommonOptions {
  config?: string;
  data?: string;
}

/** The configuration for a command: file, environment, then these flags. */
export function configFromOptions(options: CommonOptions, extra: Record<string, unknown> = {}): Promise<Config> {
  return loadConfig({
    ...(options.config === undefined ? {} : { file: options.config }),
    overrides: { dataDir: options.data, ...extra },
  });
}
