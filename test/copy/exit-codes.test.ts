import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UpstreamError } from '../../src/client/errors.ts';
import { errorCodes, RegistryError } from '../../src/errors/registry-error.ts';
import { classifyFailure, copyExitCodes } from '../../src/copy/exit-codes.ts';

describe('how a failed copy is reported', () => {
  const upstream = (status: number | undefined, code?: string) => new UpstreamError(`HTTP ${status}`, { status, code, temporary: false });
  const cases: [string, unknown, number, string][] = [
    ['a manifest the source does not have', upstream(404, 'MANIFEST_UNKNOWN'), copyExitCodes.notFound, 'MANIFEST_UNKNOWN'],
    ['a 404 without the spec error body', upstream(404), copyExitCodes.notFound, 'UNKNOWN'],
    ['a 401 without a body', upstream(401), copyExitCodes.auth, 'UNAUTHORIZED'],
    ['a 403 without a body', upstream(403), copyExitCodes.auth, 'DENIED'],
    ['a digest that did not match', new RegistryError('DIGEST_INVALID'), copyExitCodes.integrity, 'DIGEST_INVALID'],
    ['an unreachable registry', upstream(undefined), copyExitCodes.failure, 'UNKNOWN'],
  ];
  for (const [what, error, exitCode, code] of cases) {
    it(`${what}: exit ${exitCode}, code ${code}`, () => {
      assert.deepEqual(classifyFailure(error), { exitCode, code });
    });
  }
  it('reports only codes of the spec table (and UNKNOWN), whatever the status', () => {
    for (let status = 400; status < 600; status += 1) {
      const { code } = classifyFailure(upstream(status));
      assert.ok(code in errorCodes, `HTTP ${status} is reported as ${code}`);
    }
  });
});
