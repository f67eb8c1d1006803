import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeScopes } from '../../src/client/authenticator.ts';
import { parseChallenges } from '../../src/client/challenge.ts';

const cases: [string, ReturnType<typeof parseChallenges>][] = [
  [
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
    [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' } }],
  ],
  ['Basic realm="Registry Realm"', [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]],
  [
    'Basic realm="a", Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/r:pull repository:o/s:pull"',
    [
      { scheme: 'basic', params: { realm: 'a' } },
      { scheme: 'bearer', params: { realm: 'https://ghcr.io/token', service: 'ghcr.io', scope: 'repository:o/r:pull repository:o/s:pull' } },
    ],
  ],
  ['bearer REALM=https://x/token , Service = reg', [{ scheme: 'bearer', params: { realm: 'https://x/token', service: 'reg' } }]],
  ['Bearer realm="with \\"quotes\\" and, comma",error="invalid_token"', [{ scheme: 'bearer', params: { realm: 'with "quotes" and, comma', error: 'invalid_token' } }]],
  [
    'Negotiate abc==, Basic realm=x',
    [
      { scheme: 'negotiate', params: {} },
      { scheme: 'basic', params: { realm: 'x' } },
    ],
  ],
  ['', []],
];

for (const [header, expected] of cases) {
  test(`WWW-Authenticate: ${header || '(empty)'}`, () => {
    assert.deepEqual(parseChallenges(header), expected);
  });
}

test('scopes of the same repository merge their actions', () => {
  assert.deepEqual(mergeScopes(['repository:a/b:pull'], ['repository:a/b:push', 'repository:c:pull', 'registry:catalog:*']), [
    'registry:catalog:*',
    'repository:a/b:pull,push',
    'repository:c:pull',
  ]);
});
