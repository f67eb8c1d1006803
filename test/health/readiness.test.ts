import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMetadataUnavailable } from '../../src/errors/unavailable.ts';
import { Readiness, type DependencyState } from '../../src/health/readiness.ts';
import { startTestRegistry } from '../helpers/registry.ts';

describe('readiness checks', () => {
  it('goes down when a probe fails or does not answer in time, and up again, telling each change once', async () => {
    let mode: 'ok' | 'fail' | 'hang' = 'ok';
    const changes: [string, DependencyState][] = [];
    const readiness = new Readiness({
      probes: {
        metadata: async () => {
          if (mode === 'fail') throw new Error('connect ECONNREFUSED');
          if (mode === 'hang') await new Promise(() => undefined);
        },
        blobs: async () => undefined,
      },
      interval: 60_000,
      timeout: 100,
      onChange: (dependency, state) => changes.push([dependency, state]),
    });
    await readiness.check();
    assert.equal(readiness.ready, true);
    mode = 'fail';
    await readiness.check();
    await readiness.check();
    assert.equal(readiness.ready, false);
    assert.equal(readiness.report()['metadata database']?.status, 'down');
    assert.equal(readiness.report()['metadata database']?.reason, 'connect ECONNREFUSED');
    assert.equal(readiness.report()['blob store']?.status, 'up');
    mode = 'hang';
    const started = Date.now();
    await readiness.check();
    assert.ok(Date.now() - started < 1000, 'a hanging probe is given up after the timeout');
    assert.equal(readiness.report()['metadata database']?.reason, 'no answer within 100 ms');
    mode = 'ok';
    await readiness.check();
    assert.equal(readiness.ready, true);
    assert.deepEqual(
      changes.map(([dependency, state]) => [dependency, state.up]),
      [
        ['metadata', false],
        ['metadata', true],
      ],
    );
  });
});

describe('readiness costs no round trip per question', () => {
  it('probes once per interval, however often it is asked', async () => {
    let probes = 0;
    const readiness = new Readiness({
      probes: {
        metadata: async () => {
          probes++;
        },
      },
      interval: 60_000,
      timeout: 100,
    });
    await readiness.start();
    try {
      for (let i = 0; i < 1000; i++) assert.equal(readiness.ready && readiness.report()['metadata database']?.status === 'up', true);
      assert.equal(probes, 1, 'the check at start, nothing per question');
    } finally {
      readiness.stop();
    }
  });
});

describe('telling an unreachable metadata database from other errors', () => {
  const socketError = (code: string, syscall: string) => Object.assign(new Error(`${syscall} ${code}`), { code, syscall });
  const postgresError = (code: string) => Object.assign(new Error('server says'), { code, severity: 'FATAL' });
  const cases: [string, unknown, boolean][] = [
    ['a refused connection', socketError('ECONNREFUSED', 'connect'), true],
    ['a missing unix socket', socketError('ENOENT', 'connect'), true],
    ['a reset connection', socketError('ECONNRESET', 'read'), true],
    ['a missing file', socketError('ENOENT', 'open'), false],
    ['PostgreSQL shutting down', postgresError('57P01'), true],
    ['PostgreSQL starting up', postgresError('57P03'), true],
    ['too many connections', postgresError('53300'), true],
    ['a statement timeout', postgresError('57014'), true],
    ['a unique violation', postgresError('23505'), false],
    ['a connection lost by pg', new Error('Connection terminated unexpectedly'), true],
    ['a pool with no free connection', new Error('timeout exceeded when trying to connect'), true],
    ['a query never answered', new Error('Query read timeout'), true],
    ['SQLite busy', Object.assign(new Error('database is locked'), { code: 'ERR_SQLITE_ERROR', errcode: 5 }), true],
    ['a SQLite constraint', Object.assign(new Error('constraint failed'), { code: 'ERR_SQLITE_ERROR', errcode: 19 }), false],
    ['a bug', new TypeError('undefined is not a function'), false],
  ];
  for (const [name, error, expected] of cases) {
    it(`${name}: ${expected ? 'unavailable' : 'not an outage'}`, () => assert.equal(isMetadataUnavailable(error), expected));
  }
});

describe('health endpoints of a running registry', () => {
  it('answers /livez, /healthz and /readyz with the state of each store', async () => {
    const registry = await startTestRegistry();
    try {
      for (const path of ['/livez', '/healthz']) {
        const response = await fetch(`${registry.url}${path}`);
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), { status: 'ok' });
      }
      const ready = await fetch(`${registry.url}/readyz`);
      assert.equal(ready.status, 200);
      const body = (await ready.json()) as { status: string; dependencies: Record<string, { status: string }> };
      assert.equal(body.status, 'ready');
      assert.equal(body.dependencies['metadata database']?.status, 'up');
      const metrics = await (await fetch(`${registry.url}/metrics`)).text();
      assert.match(metrics, /berth_dependency_up\{dependency="metadata"\} 1/);
    } finally {
      await registry.close();
    }
  });
});
