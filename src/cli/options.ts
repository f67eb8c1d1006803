import { InvalidArgumentError } from 'commander';
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

/**
 * An option's value parser whose failures are usage errors (exit 2, with
 * commander's "option '--x <v>' argument 'v' is invalid." and the reason).
 */
export function usageParser<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      throw new InvalidArgumentError(error instanceof Error ? error.message : String(error));
    }
  };
}

/** What schemaParser needs of a setting's schema (config/units.ts). */
interface SettingSchema<T> {
  safeParse(value: string): { success: true; data: T } | { success: false; error: { issues: readonly { message: string }[] } };
}

/** A usage-error parser from a configuration setting's own schema, so a flag and its setting accept the same values. */
export function schemaParser<T>(schema: SettingSchema<T>): (value: string) => T {
  return (value) => {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new InvalidArgumentError(parsed.error.issues[0]?.message ?? 'invalid value');
    return parsed.data;
  };
}
