import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { hashPassword, writeHtpasswd } from '../../src/auth/htpasswd.ts';
import type * as z from 'zod/mini';
import type { accessRulesConfig } from '../../src/config/auth.ts';
import type { TestSettings } from './registry.ts';

/** The lowest bcrypt cost: tests check behaviour, not hashing strength. */
const testCost = 4;

/** Writes an htpasswd file with these users and passwords. */
export async function writeUsers(path: string, users: Record<string, string>): Promise<void> {
  const entries = await Promise.all(Object.entries(users).map(async ([user, password]) => [user, await hashPassword(password, testCost)] as const));
  await mkdir(dirname(path), { recursive: true });
  await writeHtpasswd(path, new Map(entries));
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * Settings for a registry with access control: users written under
 * `directory`, rules inline or in a rules file.
 */
export async function authSettings(
  directory: string,
  options: { users: Record<string, string>; rules?: z.input<typeof accessRulesConfig>; rulesFile?: boolean; extra?: TestSettings },
): Promise<TestSettings> {
  const htpasswd = join(directory, 'htpasswd');
  await writeUsers(htpasswd, options.users);
  const settings: TestSettings = { 'auth.htpasswd': htpasswd, ...options.extra };
  if (options.rules !== undefined && options.rulesFile === true) {
    const rulesFile = join(directory, 'rules.yaml');
    await writeFile(rulesFile, stringify(options.rules));
    settings['auth.rulesFile'] = rulesFile;
  } else if (options.rules !== undefined) {
    settings['auth.access'] = options.rules;
  }
  return settings;
}
