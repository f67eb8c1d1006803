import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call } from '../helpers/http.ts';
import { pushImage, randomImage } from '../helpers/images.ts';
import { postgresMissing, startTestPostgres, type TestPostgres } from '../helpers/postgres.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

/**
 * A PostgreSQL pool with no connection free within its timeout is an
 * unavailable metadata database (503 naming it), not an internal error;
 * the pool serves again once connections come back.
 */
describe('PostgreSQL out of pool connections', { skip: postgresMissing() }, () => {
  let postgres: TestPostgres;
  let proxy: TcpProxy;
  let registry: TestRegistry;
  before(async () => {
    postgres = await startTestPostgres();
    const database = await postgres.createDatabase();
    proxy = await startTcpProxy({ path: postgres.socketPath });
    registry = await startTestRegistry(
      {
        'metadata.driver': 'postgres',
        'metadata.postgres': {
          host: '127.0.0.1',
          port: proxy.port,
          user: database.user,
          database: database.database,
          pool: { max: 1, connectionTimeout: '300ms' },
          statementTimeout: '10s',
        },
        // Readiness checks must not take the one connection while requests are measured.
        'health.interval': '1m',
      },
      { captureLogs: true },
    );
    await pushImage(registry.url, 'team/app', 'v1', randomImage({ layers: 1, layerSize: 1000 }));
  });
  after(async () => {
    await registry?.close();
    await proxy?.close();
    await postgres?.close();
  });

  it('answers 503 for requests that find no connection in time, and serves them all again after', async () => {
    // Every query now takes over a second on the only connection: the requests behind it wait past the pool's 300 ms.
    proxy.setDelay(600);
    const answers = await Promise.all(Array.from({ length: 4 }, () => call(registry.url, 'GET', '/v2/team/app/tags/list')));
    const statuses = answers.map((answer) => answer.status);
    assert.ok(statuses.includes(200), `the request holding the connection is served: ${statuses.join(', ')}`);
    assert.ok(statuses.includes(503), `the others are refused: ${statuses.join(', ')}`);
    for (const answer of answers.filter((each) => each.status !== 200)) {
      assert.equal(answer.status, 503, answer.text);
      assert.equal(answer.headers.get('retry-after'), '5');
      const body = JSON.parse(answer.text) as { errors: { code: string; detail: unknown }[] };
      assert.equal(body.errors[0]?.code, 'TOOMANYREQUESTS');
      assert.deepEqual(body.errors[0]?.detail, { unavailable: 'metadata' });
    }
    const warned = registry.logs.filter((line) => line['msg'] === 'dependency unavailable');
    assert.equal(warned.length, statuses.filter((status) => status === 503).length);
    assert.match(String(warned[0]?.['reason']), /timeout exceeded when trying to connect/);
    assert.deepEqual(
      registry.logs.filter((line) => (line['level'] as number) >= 50),
      [],
    );

    proxy.setDelay(0);
    const after = await Promise.all(Array.from({ length: 4 }, () => call(registry.url, 'GET', '/v2/team/app/tags/list')));
    assert.deepEqual(
      after.map((answer) => answer.status),
      [200, 200, 200, 200],
    );
  });
});
