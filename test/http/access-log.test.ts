import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import { accessLine, logAccess, type AccessFacts } from '../../src/http/access-log.ts';

/** A logger made as Berth makes its own (src/server.ts, createLogger), with a fixed time, writing into `lines`. */
function capturing(level = 'info') {
  const lines: string[] = [];
  const logger = pino({ level, base: null, timestamp: () => ',"time":"2026-12-08T00:00:00.000Z"' }, { write: (line: string) => lines.push(line) });
  return { logger, lines };
}

const facts: AccessFacts = {
  reqId: 'c0ffee-0001',
  method: 'GET',
  path: '/v2/team/app/manifests/latest',
  status: 200,
  bytes: 1093,
  elapsedMs: 0.123456,
  client: '127.0.0.1',
  user: undefined,
  userAgent: 'containerd/2.0',
  complete: true,
};

function withoutIdAndAgent({ reqId: _id, userAgent: _agent, ...rest }: AccessFacts): AccessFacts {
  return { ...rest, userAgent: undefined };
}

/** Counts the lines a logger writes through pino's generic path. */
function countingGeneric(logger: FastifyBaseLogger): { count: number } {
  const counter = { count: 0 };
  const generic = logger.info.bind(logger) as (...args: unknown[]) => void;
  (logger as unknown as { info: (...args: unknown[]) => void }).info = (...args) => {
    counter.count++;
    generic(...args);
  };
  return counter;
}

const variants: [string, AccessFacts][] = [
  ['a hot read (its own request id, anonymous)', facts],
  ['a signed-in client that left early', { ...facts, user: 'ci-bot', complete: false, status: 206, bytes: 0 }],
  ['no request id and no user agent (the app, with a per-request child)', withoutIdAndAgent(facts)],
  [
    'strings that need escaping: quotes, backslashes, control characters, non-ASCII, long paths',
    {
      ...facts,
      path: `/v2/${'a/'.repeat(40)}manifests/"x"\\y?ns=r\u0001\u001f`,
      userAgent: 'Mozilla/5.0 (über; \u2028 😀) "quoted" \\ back',
      user: 'jürgen "j"',
    },
  ],
];

/** The line pino writes for the same facts through its generic path. */
function throughPino(logger: FastifyBaseLogger, lines: string[], each: AccessFacts): string {
  logger.info(accessLine(each), 'request');
  return lines.pop() as string;
}

describe('access-log lines', () => {
  for (const [what, each] of variants) {
    it(`are the line pino writes, byte for byte: ${what}`, () => {
      for (const child of [false, true]) {
        const { logger, lines } = capturing();
        // As Fastify's per-request logger: a child with the request id bound.
        const target = (child ? logger.child({ reqId: 'req-7' }) : logger) as FastifyBaseLogger;
        const generic = countingGeneric(target);
        logAccess(target, each);
        assert.equal(generic.count, 0, "written without pino's generic path");
        const written = lines.pop();
        assert.equal(lines.length, 0);
        assert.equal(written, throughPino(target, lines, each));
        assert.equal(JSON.parse(written as string).msg, 'request');
      }
    });
  }

  it('go through pino when they carry an error (its serializer writes it)', () => {
    const { logger, lines } = capturing();
    const failed = { ...facts, status: 500, error: new Error('disk on fire') };
    logAccess(logger as FastifyBaseLogger, failed);
    const written = JSON.parse(lines.pop() as string) as { err: { message: string; stack: string } };
    assert.equal(written.err.message, 'disk on fire');
    assert.match(written.err.stack, /disk on fire/);
  });

  it('are not written below the info level', () => {
    const { logger, lines } = capturing('warn');
    logAccess(logger as FastifyBaseLogger, facts);
    assert.deepEqual(lines, []);
  });
});
