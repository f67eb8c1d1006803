import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.ts';
import * as z from './zod.ts';

export const envPrefix = 'BERTH_';

/** A configuration that cannot be used; the message names the key and where it came from. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface ConfigSources {
  /** A YAML file; missing is an error when named. */
  file?: string;
  /** The environment (only this module reads process.env, through this parameter's default). */
  env?: Record<string, string | undefined>;
  /** Values from flags, by key path ("listen", "dataDir"); they win over everything. */
  overrides?: Record<string, unknown>;
}

/** Loads and validates the configuration: defaults ← file ← BERTH_* environment ← flags. */
export async function loadConfig(sources: ConfigSources = {}): Promise<Config> {
  const origins = new Map<string, string>();
  let raw: Record<string, unknown> = {};
  if (sources.file !== undefined) {
    raw = await readYamlFile(sources.file);
    for (const path of leafPaths(raw)) origins.set(path, sources.file);
  }
  // Made at the first BERTH_ variable: the schema's JSON Schema costs about 10 ms at start-up.
  let keys: Map<string, EnvironmentKey> | undefined;
  for (const [name, value] of Object.entries(sources.env ?? process.env)) {
    if (!name.startsWith(envPrefix) || value === undefined) continue;
    keys ??= environmentKeys();
    const key = keys.get(name);
    if (key === undefined) {
      throw new ConfigError(`unknown environment variable ${name}: no configuration key is named so (see docs/configuration.md)`);
    }
    setPath(raw, key.path, key.scalar ? coerceScalar(value, key.kind) : parseYamlValue(value, name));
    origins.set(key.path.join('.'), `environment variable ${name}`);
  }
  for (const [path, value] of Object.entries(sources.overrides ?? {})) {
    if (value === undefined) continue;
    setPath(raw, path.split('.'), value);
    origins.set(path, 'command line');
  }
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(result.error, origins));
  return result.data;
}

/** The environment variable that sets a key path ("storage.fs.path" → BERTH_STORAGE_FS_PATH). */
export function environmentName(path: readonly string[]): string {
  return envPrefix + path.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

interface EnvironmentKey {
  path: string[];
  /** Scalars are taken as text and converted; anything else is parsed as YAML. */
  scalar: boolean;
  kind: string;
}

/** Every key of the schema, objects included, by environment variable name. */
export function environmentKeys(): Map<string, EnvironmentKey> {
  const keys = new Map<string, EnvironmentKey>();
  const walk = (schema: JsonSchema, path: string[]): void => {
    const kind = kindOf(schema);
    if (path.length > 0) keys.set(environmentName(path), { path, scalar: !['object', 'array', 'union'].includes(kind), kind });
    for (const [key, child] of Object.entries(schema.properties ?? {})) walk(child, [...path, key]);
  };
  // The schema as JSON Schema (zod's supported way to inspect it): input
  // types, so a duration is the text or number one writes, not a number.
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as JsonSchema, []);
  return keys;
}

/** The parts of a JSON Schema node the environment mapping needs. */
interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
}

function kindOf(schema: JsonSchema): string {
  if (schema.anyOf !== undefined || schema.oneOf !== undefined) return 'union';
  if (schema.type === 'integer') return 'number';
  return schema.type ?? 'unknown';
}

function coerceScalar(value: string, kind: string): unknown {
  if (kind === 'boolean') {
    if (/^(true|1|yes|on)$/i.test(value)) return true;
    if (/^(false|0|no|off)$/i.test(value)) return false;
    return value;
  }
  if (kind === 'number' && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return value;
}

function parseYamlValue(value: string, where: string): unknown {
  try {
    return parseYaml(value) as unknown;
  } catch (error) {
    throw new ConfigError(`${where}: not valid YAML: ${(error as Error).message}`);
  }
}

async function readYamlFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read configuration file ${file}: ${(error as Error).message}`);
  }
  let value: unknown;
  try {
    value = parseYaml(text) as unknown;
  } catch (error) {
    throw new ConfigError(`${file}: not valid YAML: ${(error as Error).message}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ConfigError(`${file}: the top level must be a mapping of keys`);
  return value as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

function leafPaths(value: unknown, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => leafPaths(child, prefix === '' ? key : `${prefix}.${key}`));
}

function describeIssues(error: z.core.$ZodError, origins: Map<string, string>): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    const keys = 'keys' in issue && Array.isArray(issue.keys) ? (issue.keys as string[]) : [];
    if (issue.code === 'unrecognized_keys') {
      return keys
        .map((key) => {
          const full = path === '' ? key : `${path}.${key}`;
          return `${full}: unknown key${originOf(full, origins)}`;
        })
        .join('\n  ');
    }
    return `${path === '' ? '(top level)' : path}: ${issue.message}${originOf(path, origins)}`;
  });
  return `invalid configuration:\n  ${lines.join('\n  ')}`;
}

function originOf(path: string, origins: Map<string, string>): string {
  for (let candidate = path; candidate !== ''; candidate = candidate.slice(0, Math.max(candidate.lastIndexOf('.'), 0))) {
    const origin = origins.get(candidate);
    if (origin !== undefined) return ` (from ${origin})`;
  }
  return '';
}
