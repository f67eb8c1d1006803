import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startUiFixture, type UiFixture } from './fixture.ts';

describe('forms of the web UI', () => {
  let fixture: UiFixture;
  before(async () => {
    fixture = await startUiFixture();
  });
  after(() => fixture?.close());

  it('reads a sign-in form and refuses one larger than 16 KiB with 413', async () => {
    const post = (payload: string) => fixture.app.inject({ method: 'POST', url: '/ui/sign-in', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload });
    const wrong = await post('username=alice&password=wrong');
    assert.notEqual(wrong.statusCode, 413, 'a small form is read');
    const large = await post(`username=alice&password=${'x'.repeat(17 * 1024)}`);
    assert.equal(large.statusCode, 413);
  });
});
