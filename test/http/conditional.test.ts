import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { noneMatchHits } from '../../src/http/conditional.ts';

describe('If-None-Match against the entity tag "d1" (weak comparison, RFC 9110 section 13.1.2)', () => {
  for (const [header, hits] of [
    ['"d1"', true],
    ['W/"d1"', true],
    ['*', true],
    [' * ', true],
    ['"x", W/"d1"', true],
    ['"x","d1"', true],
    ['"d12"', false],
    ['"d"', false],
    ['d1', false],
    ['"x,d1"', false],
    ['""', false],
    ['"x", *', false],
  ] as const) {
    it(`${header} ${hits ? 'matches' : 'does not match'}`, () => {
      assert.equal(noneMatchHits(header, 'd1'), hits);
    });
  }
});
