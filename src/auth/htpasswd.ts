import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { writeWhole } from '../io/durable-file.ts';

/** Users and their bcrypt hashes, in file order. */
export type Htpasswd = Map<string, string>;

/** bcrypt, as Apache's `htpasswd -B` ($2y$) and bcryptjs ($2a$, $2b$) write it. */
const bcryptHash = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;

/** A user name: what Basic authentication and the htpasswd format can carry. */
const userName = /^[^\s:]{1,128}$/;

/** bcrypt reads only the first 72 bytes of a password; longer ones would be silently cut. */
export const maxPasswordBytes = 72;

export class HtpasswdError extends Error {
  override name = 'HtpasswdError';
}

export function checkUserName(user: string): string {
  if (!userName.test(user) || /[\p{Cc}]/u.test(user)) {
    throw new HtpasswdError(`invalid user name "${user.slice(0, 64)}": 1 to 128 characters, no spaces or ":"`);
  }
  return user;
}

export function checkPassword(password: string): string {
  if (password.length === 0) throw new HtpasswdError('the password is empty');
  if (Buffer.byteLength(password) > maxPasswordBytes) {
    throw new HtpasswdError(`the password is longer than ${maxPasswordBytes} bytes, more than bcrypt can use`);
  }
  return password;
}

/** Parses `user:hash` lines; blank lines and `#` comments are skipped. Only bcrypt hashes are accepted. */
export function parseHtpasswd(text: string, source: string): Htpasswd {
  const users: Htpasswd = new Map();
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const colon = trimmed.indexOf(':');
    const where = `${source}:${index + 1}`;
    if (colon <= 0) throw new HtpasswdError(`${where}: expected "user:bcrypt-hash"`);
    const user = trimmed.slice(0, colon);
    const hash = trimmed.slice(colon + 1);
    if (!userName.test(user)) throw new HtpasswdError(`${where}: invalid user name`);
    if (!bcryptHash.test(hash)) {
      throw new HtpasswdError(`${where}: user ${user} has a hash that is not bcrypt; recreate it with "berth user add" or "htpasswd -B"`);
    }
    if (users.has(user)) throw new HtpasswdError(`${where}: user ${user} appears twice`);
    users.set(user, hash);
  });
  return users;
}

export function formatHtpasswd(users: Htpasswd): string {
  return [...users].map(([user, hash]) => `${user}:${hash}\n`).join('');
}

/** The users in `path`; an absent file has none. */
export async function readHtpasswd(path: string): Promise<Htpasswd> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw error;
  }
  return parseHtpasswd(text, path);
}

/** Writes the users file whole, with mode 0600 since the hashes are worth guarding. */
export async function writeHtpasswd(path: string, users: Htpasswd): Promise<void> {
  await writeWhole(path, formatHtpasswd(users), 0o600);
}

export async function hashPassword(password: string, cost: number): Promise<string> {
  return bcrypt.hash(checkPassword(password), cost);
}

/**
 * Compared against when the user does not exist, so that a wrong name costs
 * as long as a wrong password. Made from random bytes nobody kept.
 */
const absentUserHash = '$2b$10$EqEvSwdS2FixaYtg1sHYy.GSbTFysnEc.eQ5WBY7.d4LnU.NQqTRm';

/**
 * Whether `password` is the one `hash` was made from; `hash` undefined (no
 * such user) is false, in the same time. Synchronous and slow on purpose:
 * the server runs it in worker threads (PasswordChecker).
 */
export function passwordMatches(password: string, hash: string | undefined): boolean {
  if (Buffer.byteLength(password) > maxPasswordBytes) {
    bcrypt.compareSync('', hash ?? absentUserHash);
    return false;
  }
  return bcrypt.compareSync(password, hash ?? absentUserHash) && hash !== undefined;
}
