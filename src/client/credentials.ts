import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

/** What a registry (or its token service) is told about who we are. */
export type Credentials =
  | { kind: 'basic'; username: string; password: string }
  /** An OAuth2 refresh token, as `docker login` stores for some registries. */
  | { kind: 'identity-token'; token: string; username?: string };

/** Finds credentials for a registry host (and, in podman files, a repository within it). */
export interface CredentialSource {
  lookup(host: string, repository?: string): Promise<Credentials | undefined>;
}

export const noCredentials: CredentialSource = { lookup: async () => undefined };

/** The same credentials for every request: from configuration or a flag. */
export function staticCredentials(username: string, password: string): CredentialSource {
  const credentials: Credentials = { kind: 'basic', username, password };
  return { lookup: async () => credentials };
}

/** The first source that knows an answer. */
export function firstOf(...sources: CredentialSource[]): CredentialSource {
  return {
    async lookup(host, repository) {
      for (const source of sources) {
        const found = await source.lookup(host, repository);
        if (found !== undefined) return found;
      }
      return undefined;
    },
  };
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

interface AuthFile {
  auths?: Record<string, AuthEntry>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

/**
 * Credentials from Docker's config.json or a containers auth.json: `auths`
 * entries (base64 `auth`, or `identitytoken`), per-host `credHelpers` and a
 * global `credsStore` (run as `docker-credential-<name> get`). Files that do
 * not exist are skipped; the first file that answers for a host wins.
 */
export function authFileCredentials(files: readonly string[]): CredentialSource {
  let loaded: Promise<AuthFile[]> | undefined;
  const load = () => (loaded ??= Promise.all(files.map(readAuthFile)).then((list) => list.filter((file) => file !== undefined)));
  return {
    async lookup(host, repository) {
      for (const file of await load()) {
        const found = await lookupInFile(file, host, repository);
        if (found !== undefined) return found;
      }
      return undefined;
    },
  };
}

async function readAuthFile(path: string): Promise<AuthFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read auth file ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return JSON.parse(text) as AuthFile;
  } catch (error) {
    throw new Error(`auth file ${path} is not valid JSON`, { cause: error });
  }
}

async function lookupInFile(file: AuthFile, host: string, repository: string | undefined): Promise<Credentials | undefined> {
  const wanted = canonicalHost(host);
  const helper = Object.entries(file.credHelpers ?? {}).find(([key]) => normalizeKey(key) === wanted)?.[1];
  if (helper !== undefined) return runHelper(helper, host);
  const entries = new Map(Object.entries(file.auths ?? {}).map(([key, entry]) => [normalizeKey(key), entry]));
  // podman allows entries for a namespace or repository: the longest match wins.
  const candidates = repository === undefined ? [wanted] : [...repositoryScopes(wanted, repository), wanted];
  for (const key of candidates) {
    const entry = entries.get(key);
    if (entry !== undefined) {
      const credentials = fromEntry(entry);
      if (credentials !== undefined) return credentials;
    }
  }
  if (file.credsStore !== undefined && file.credsStore !== '') return runHelper(file.credsStore, host);
  return undefined;
}

function fromEntry(entry: AuthEntry): Credentials | undefined {
  let username = entry.username;
  let password = entry.password;
  if (entry.auth !== undefined && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  if (entry.identitytoken !== undefined && entry.identitytoken !== '') {
    return username === undefined ? { kind: 'identity-token', token: entry.identitytoken } : { kind: 'identity-token', token: entry.identitytoken, username };
  }
  if (username !== undefined && password !== undefined) return { kind: 'basic', username, password };
  return undefined;
}

function repositoryScopes(host: string, repository: string): string[] {
  const parts = repository.split('/');
  return parts.map((_, index) => `${host}/${parts.slice(0, parts.length - index).join('/')}`);
}

/** `https://index.docker.io/v1/`, `registry-1.docker.io`, `docker.io` all name Docker Hub. */
function canonicalHost(host: string): string {
  const bare = host.toLowerCase();
  return bare === 'index.docker.io' || bare === 'registry-1.docker.io' ? 'docker.io' : bare;
}

function normalizeKey(key: string): string {
  const withoutScheme = key.replace(/^[a-z]+:\/\//i, '');
  const withoutVersion = withoutScheme.replace(/\/v[12]\/?$/, '').replace(/\/$/, '');
  const slash = withoutVersion.indexOf('/');
  const host = slash === -1 ? withoutVersion : withoutVersion.slice(0, slash);
  return canonicalHost(host) + (slash === -1 ? '' : withoutVersion.slice(slash));
}

/** Runs `docker-credential-<helper> get`, which reads the server on stdin and writes JSON. */
function runHelper(helper: string, host: string): Promise<Credentials | undefined> {
  const server = canonicalHost(host) === 'docker.io' ? 'https://index.docker.io/v1/' : host;
  return new Promise((resolve, reject) => {
    const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 30_000, maxBuffer: 1024 * 1024 }, (error, stdout) => {
      if (error !== null) {
        // Helpers answer "credentials not found" with a failure exit: not an error for us.
        if (/not found/i.test(stdout) || /not found/i.test(error.message)) resolve(undefined);
        else reject(new Error(`credential helper docker-credential-${helper} failed: ${error.message}`, { cause: error }));
        return;
      }
      try {
        const answer = JSON.parse(stdout) as { Username?: string; Secret?: string };
        if (answer.Secret === undefined || answer.Secret === '') resolve(undefined);
        else if (answer.Username === '<token>') resolve({ kind: 'identity-token', token: answer.Secret });
        else resolve({ kind: 'basic', username: answer.Username ?? '', password: answer.Secret });
      } catch (cause) {
        reject(new Error(`credential helper docker-credential-${helper} wrote invalid JSON`, { cause }));
      }
    });
    child.stdin?.end(server);
  });
}
