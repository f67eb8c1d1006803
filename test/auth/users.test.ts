import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { AccessRules, AccessRulesError, globToRegExp } from '../../src/auth/access-rules.ts';
import { CredentialCache } from '../../src/auth/credential-cache.ts';
import { hashPassword, HtpasswdError, parseHtpasswd, passwordMatches } from '../../src/auth/htpasswd.ts';
import { accessRulesConfig } from '../../src/config/auth.ts';
import { loadConfig } from '../../src/config/load.ts';
import { sqliteMigrations } from '../../src/meta/sqlite/migrations.ts';
import { SqliteMetaStore } from '../../src/meta/sqlite/sqlite-meta-store.ts';
import type { RepositoryName } from '../../src/oci/names.ts';
import { openSecurity } from '../../src/access-tls-limits.ts';
import { pino } from 'pino';
import { runBerth as berth } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('htpasswd', () => {
  it('reads bcrypt lines as Apache and bcryptjs write them, and names the line of anything else', async () => {
    const hash = await hashPassword('pw', 4);
    const users = parseHtpasswd(`# users\n\nalice:${hash}\nbob:${hash.replace(/^\$2b\$/, '$2y$')}\n`, 'f');
    assert.deepEqual([...users.keys()], ['alice', 'bob']);
    assert.equal(passwordMatches('pw', users.get('bob')), true);
    assert.throws(
      () => parseHtpasswd('carol:$apr1$abc$def\n', 'f'),
      (error: Error) => error instanceof HtpasswdError && /f:1: user carol has a hash that is not bcrypt/.test(error.message),
    );
    assert.throws(() => parseHtpasswd(`a:${hash}\na:${hash}\n`, 'f'), /f:2: user a appears twice/);
    assert.throws(() => parseHtpasswd('no-colon\n', 'f'), /f:1: expected "user:bcrypt-hash"/);
  });

  it('verifies passwords, and says no for absent users and over-long passwords', async () => {
    const hash = await hashPassword('right', 4);
    assert.equal(passwordMatches('right', hash), true);
    assert.equal(passwordMatches('wrong', hash), false);
    assert.equal(passwordMatches('right', undefined), false);
    assert.equal(passwordMatches('x'.repeat(80), hash), false);
    await assert.rejects(hashPassword('x'.repeat(73), 4), /longer than 72 bytes/);
  });

  it('berth user add|remove|list write the file whole, mode 0600', async () => {
    const temp = await tempDir('berth-user-cli');
    try {
      const data = ['--data', temp.path];
      const none = await berth(['user', 'list', ...data]);
      assert.equal(none.code, 0);
      assert.equal(none.stdout, '', 'scripts read an empty list');
      assert.match(none.stderr, /no users in .*htpasswd; add one with: berth user add NAME/);
      const added = await berth(['user', 'add', 'alice', '--password-stdin', '--cost', '4', ...data], 'first\n');
      assert.equal(added.code, 0, added.stderr);
      assert.match(added.stdout, /added user alice/);
      assert.equal((await berth(['user', 'add', 'bob', '--password-stdin', '--cost', '4', ...data], 'second')).code, 0);
      const changed = await berth(['user', 'add', 'alice', '--password-stdin', '--cost', '4', ...data], 'third\n');
      assert.match(changed.stdout, /changed the password of user alice/);
      const file = join(temp.path, 'htpasswd');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const users = parseHtpasswd(await readFile(file, 'utf8'), file);
      assert.equal(passwordMatches('third', users.get('alice')), true);
      assert.equal(passwordMatches('second', users.get('bob')), true);
      assert.equal((await berth(['user', 'list', ...data])).stdout, 'alice\nbob\n');
      assert.equal((await berth(['user', 'remove', 'alice', ...data])).code, 0);
      const missing = await berth(['user', 'remove', 'alice', ...data]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no user alice/);
      assert.match((await berth(['user', 'add', 'bad:name', '--password-stdin', ...data], 'pw')).stderr, /invalid user name/);
      assert.match((await berth(['user', 'add', 'carol', '--password-stdin', ...data], '')).stderr, /the password is empty/);
      assert.match((await berth(['user', 'add', 'carol', ...data])).stderr, /--password-stdin/);
      assert.equal((await berth(['user', 'list', ...data])).stdout, 'bob\n');
    } finally {
      await temp.remove();
    }
  });
});

describe('access rules', () => {
  it('compiles globs: * within a component, ** across, the rest literal', () => {
    assert.ok(globToRegExp('team/*').test('team/app'));
    assert.ok(!globToRegExp('team/*').test('team/app/x'));
    assert.ok(globToRegExp('team/**').test('team/app/x'));
    assert.ok(!globToRegExp('team/**').test('team'));
    assert.ok(!globToRegExp('a.b').test('axb'));
    assert.ok(globToRegExp('**').test('any/thing'));
  });

  it('names groups that are not defined', () => {
    assert.throws(() => new AccessRules(accessRulesConfig.parse({ rules: [{ repositories: '**', grants: { '@ops': ['pull'] } }] })), AccessRulesError);
    assert.throws(() => new AccessRules(accessRulesConfig.parse({ admins: ['@root'] })), /admins names group @root/);
  });

  it('gives admins everything, members their group grants, and anonymous callers only anonymous grants', () => {
    const rules = new AccessRules(
      accessRulesConfig.parse({
        admins: ['@ops'],
        groups: { ops: ['olga'], dev: ['dan'] },
        rules: [{ repositories: 'a/*', anonymous: ['pull'], grants: { '@dev': ['push'], '*': ['delete'] } }],
      }),
    );
    assert.deepEqual([...rules.actions('olga', 'unmatched')].sort(), ['delete', 'pull', 'push']);
    assert.deepEqual([...rules.actions('dan', 'a/b')].sort(), ['delete', 'pull', 'push']);
    assert.deepEqual([...rules.actions('eve', 'a/b')].sort(), ['delete', 'pull']);
    assert.deepEqual([...rules.actions(undefined, 'a/b')], ['pull']);
    assert.deepEqual([...rules.actions('dan', 'b/c')], []);
  });
});

describe('credential cache', () => {
  it('remembers by keyed hash, forgets on a new password hash, and stays within its size', () => {
    const cache = new CredentialCache({ ttl: 60_000, size: 2 });
    cache.remember('a', 'pw', 'hash1');
    assert.equal(cache.verified('a', 'pw', 'hash1'), true);
    assert.equal(cache.verified('a', 'other', 'hash1'), false);
    assert.equal(cache.verified('a', 'pw', 'hash2'), false, 'a changed password misses');
    cache.remember('b', 'pw', 'h');
    cache.remember('c', 'pw', 'h');
    cache.remember('d', 'pw', 'h');
    assert.equal(cache.size, 2);
    assert.equal(cache.verified('b', 'pw', 'h'), false, 'the least recent went first');
    assert.equal(cache.verified('d', 'pw', 'h'), true);
    const off = new CredentialCache({ ttl: 0, size: 10 });
    off.remember('a', 'pw', 'h');
    assert.equal(off.verified('a', 'pw', 'h'), false);
  });

  it('runs one comparison for credentials many requests bring at once, and a new one afterwards', async () => {
    const cache = new CredentialCache({ ttl: 60_000, size: 10 });
    let comparisons = 0;
    const compare = async () => {
      comparisons++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      return true;
    };
    const answers = await Promise.all(Array.from({ length: 64 }, () => cache.compareOnce('a', 'pw', 'h', compare)));
    assert.deepEqual(new Set(answers), new Set([true]));
    assert.equal(comparisons, 1);
    await Promise.all([cache.compareOnce('a', 'other', 'h', compare), cache.compareOnce('a', 'pw', 'h2', compare)]);
    assert.equal(comparisons, 3, 'other passwords and other hashes are compared on their own');
    await cache.compareOnce('a', 'pw', 'h', compare);
    assert.equal(comparisons, 4, 'a finished comparison is not reused: the cache entry is what remembers');
  });
});

describe('configuration of access control', () => {
  it('refuses auth.enabled without users, and anonymousPull next to rules', async () => {
    const temp = await tempDir('berth-auth-config');
    const logger = pino({ level: 'silent' });
    try {
      const enabled = await loadConfig({ env: {}, overrides: { dataDir: temp.path, 'auth.enabled': true } });
      await assert.rejects(openSecurity(enabled, logger), /does not exist: create it with "berth user add NAME"/);
      await assert.rejects(loadConfig({ env: {}, overrides: { dataDir: temp.path, 'auth.access': {}, 'auth.rulesFile': 'x' } }), /give either rulesFile or access/);
      await assert.rejects(loadConfig({ env: {}, overrides: { 'auth.token.ttl': '10s' } }), /at least 60s/);
      await assert.rejects(loadConfig({ env: {}, overrides: { 'tls.cert': 'a.pem' } }), /give both cert and key/);
      const env = await loadConfig({ env: { BERTH_AUTH_CHALLENGE: 'token', BERTH_LIMITS_RATE_LIMIT_REQUESTS: '5' }, overrides: { dataDir: temp.path } });
      assert.equal(env.auth.challenge, 'token');
      assert.equal(env.limits.rateLimit.requests, 5);
      const off = await openSecurity(env, logger);
      assert.equal(off.app.access, undefined, 'auto: no users file, no access control');
      assert.equal(off.app.server?.rateLimit?.requests, 5);
    } finally {
      await temp.remove();
    }
  });
});

describe('upload owners in SQLite', () => {
  it('adds the owner column to an existing database and keeps its sessions', async () => {
    const temp = await tempDir('berth-sqlite-owner');
    try {
      const path = join(temp.path, 'berth.db');
      const old = new DatabaseSync(path);
      old.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
      old.exec(sqliteMigrations[0] as string);
      old.prepare('INSERT INTO schema_migrations VALUES (1, 0)').run();
      old.prepare('INSERT INTO uploads (id, repository, size, started_at, updated_at) VALUES (?, ?, 0, 0, 0)').run('old', 'a/b');
      old.close();
      const store = SqliteMetaStore.open(path);
      try {
        const before = await store.uploads.get('old');
        assert.equal(before?.owner, undefined);
        const now = new Date();
        await store.uploads.create({ id: 'new', repository: 'a/b' as RepositoryName, size: 0, startedAt: now, updatedAt: now, owner: 'alice' });
        assert.equal((await store.uploads.get('new'))?.owner, 'alice');
      } finally {
        await store.close();
      }
    } finally {
      await temp.remove();
    }
  });
});
