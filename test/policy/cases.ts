import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Reply } from '../helpers/http.ts';
import type { TestRegistry } from '../helpers/registry.ts';

/** One step of a policy table: a request, the status it gets, and for 403 what the DENIED message says. */
export interface PolicyCase {
  step: string;
  request: (registry: TestRegistry) => Promise<Reply>;
  status: number;
  message?: RegExp;
}

/** Runs the steps in order against one registry: each sees what the ones before it stored. */
export function runPolicyCases(cases: readonly PolicyCase[], registry: () => TestRegistry): void {
  for (const { step, request, status, message } of cases) {
    it(step, async () => {
      const reply = await request(registry());
      assert.equal(reply.status, status, reply.text);
      if (status === 403) {
        const error = reply.json<{ errors: { code: string; message: string }[] }>().errors[0];
        assert.equal(error?.code, 'DENIED');
        assert.match(error?.message ?? '', message as RegExp);
      }
    });
  }
}
