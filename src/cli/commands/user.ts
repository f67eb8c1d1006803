import { mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { checkPassword, checkUserName, hashPassword, readHtpasswd, writeHtpasswd, type Htpasswd } from '../../auth/htpasswd.ts';
import { defaultHtpasswdPath } from '../../config/schema.ts';
import { configFromOptions, type CommonOptions } from '../options.ts';
import { readStdinLine } from '../stdin.ts';

interface UserOptions extends CommonOptions {
  htpasswd?: string;
}

/** `berth user add|remove|list`: the users file (bcrypt htpasswd), written whole; a running registry picks changes up by itself. */
export function registerUser(program: Command): void {
  const user = program.command('user').description('manage the users who may sign in (a bcrypt htpasswd file)');
  const common = (command: Command) =>
    command
      .option('--htpasswd <file>', 'users file (default: auth.htpasswd, or <data>/htpasswd)')
      .option('--data <dir>', 'data directory (default ./data)')
      .option('--config <file>', 'YAML configuration file');

  common(user.command('add <name>'))
    .description('add a user, or set a new password for an existing one')
    .option('--password-stdin', 'read the password from standard input instead of asking')
    .option('--cost <rounds>', 'bcrypt cost (each step doubles the work)', parseCost, 10)
    .action(async (name: string, options: UserOptions & { passwordStdin?: boolean; cost: number }) => {
      checkUserName(name);
      const password = checkPassword(options.passwordStdin === true ? await readStdinLine() : await askTwice(name));
      const hash = await hashPassword(password, options.cost);
      const path = await usersFile(options);
      const existed = await update(path, (users) => {
        const had = users.has(name);
        users.set(name, hash);
        return had;
      });
      process.stdout.write(`${existed ? 'changed the password of' : 'added'} user ${name} in ${path}\n`);
    });

  common(user.command('remove <name>'))
    .description('remove a user (their refresh tokens stop working too)')
    .action(async (name: string, options: UserOptions) => {
      const path = await usersFile(options);
      const existed = await update(path, (users) => users.delete(name));
      if (!existed) throw new Error(`no user ${name} in ${path}`);
      process.stdout.write(`removed user ${name} from ${path}\n`);
    });

  common(user.command('list'))
    .description('list the users, one per line')
    .action(async (options: UserOptions) => {
      const file = await usersFile(options);
      const users = await readHtpasswd(file);
      // Scripts read names from stdout; people are told why it is empty.
      if (users.size === 0) process.stderr.write(`no users in ${file}; add one with: berth user add NAME\n`);
      process.stdout.write([...users.keys()].map((name) => `${name}\n`).join(''));
    });
}

async function usersFile(options: UserOptions): Promise<string> {
  return options.htpasswd ?? defaultHtpasswdPath(await configFromOptions(options));
}

/** Read, change and write the file under a lock file, so two commands at once cannot lose each other's change. */
async function update<T>(path: string, change: (users: Htpasswd) => T): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  const lock = `${path}.lock`;
  for (let attempt = 0; ; attempt += 1) {
    try {
      await (await open(lock, 'wx', 0o600)).close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 100) {
        throw new Error(`cannot lock ${path} (${lock} exists; remove it if no other berth user command runs)`, { cause: error });
      }
      await sleep(50);
    }
  }
  try {
    const users = await readHtpasswd(path);
    const result = change(users);
    await writeHtpasswd(path, users);
    return result;
  } finally {
    await rm(lock, { force: true });
  }
}

async function askTwice(name: string): Promise<string> {
  if (process.stdin.isTTY !== true) throw new Error('no terminal to ask for the password on: pass it with --password-stdin');
  const first = await askHidden(`password for ${name}: `);
  const second = await askHidden('again: ');
  if (first !== second) throw new Error('the passwords differ');
  return first;
}

/** Reads one line from the terminal without echoing it. */
function askHidden(prompt: string): Promise<string> {
  const { stdin, stderr } = process;
  stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise((resolveLine, reject) => {
    let line = '';
    const finish = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (error === undefined) resolveLine(line);
      else reject(error);
    };
    const onData = (text: string) => {
      for (const character of text) {
        if (character === '\r' || character === '\n') return finish();
        if (character === '\u0003') return finish(new Error('interrupted'));
        if (character === '\u007f' || character === '\b') line = line.slice(0, -1);
        else line += character;
      }
    };
    stdin.on('data', onData);
  });
}

function parseCost(value: string): number {
  const cost = Number(value);
  if (!Number.isInteger(cost) || cost < 4 || cost > 15) throw new InvalidArgumentError('a whole number from 4 to 15');
  return cost;
}
