import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { SessionSigner } from '../../src/auth/sessions.ts';

describe('web UI session values', () => {
  const signer = new SessionSigner(randomBytes(32));

  it('verifies what it issued until it expires', () => {
    const now = Date.now();
    const { value, claims } = signer.issue('alice', 'fingerprint', 60_000, now);
    assert.deepEqual(signer.verify(value, now + 1000), claims);
    assert.equal(claims.csrf.length, 24);
    assert.equal(signer.verify(value, now + 60_000), undefined);
  });

  it('refuses a changed value, another key and malformed input', () => {
    const { value } = signer.issue('alice', 'fingerprint', 60_000);
    const [payload, mac] = value.split('.') as [string, string];
    const forged = Buffer.from(Buffer.from(payload, 'base64url').toString().replace('alice', 'admin')).toString('base64url');
    assert.equal(signer.verify(`${forged}.${mac}`), undefined);
    assert.equal(new SessionSigner(randomBytes(32)).verify(value), undefined);
    for (const bad of ['', '.', 'abc', `${value}.x`, `${payload}.`]) assert.equal(signer.verify(bad), undefined);
  });
});
