import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { basic, writeUsers } from '../helpers/auth.ts';
import { startBerthServer } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A GET over HTTPS trusting only `ca`. */
function httpsGet(url: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { ca, headers }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers }));
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

describe('berth serve --tls self-signed', () => {
  it('serves HTTPS from its development CA, prints how to trust it, and logs who asked', async () => {
    const temp = await tempDir('berth-serve-tls');
    const data = join(temp.path, 'data');
    await writeUsers(join(data, 'htpasswd'), { alice: 'pw' });
    const berth = await startBerthServer(['--data', data, '--tls', 'self-signed', '--tls-host', '127.0.0.1'], { BERTH_AUTH_ANONYMOUS_PULL: 'true' });
    try {
      const url = berth.url.replace(/^http:/, 'https:');
      assert.match(await berth.waitFor(/Berth is listening on https:/), /https:\/\/127\.0\.0\.1:\d+/);
      const ca = await readFile(join(data, 'tls', 'ca.crt'));
      const stderr = berth.stderr();
      assert.match(stderr, /\/etc\/docker\/certs\.d\/127\.0\.0\.1:\d+\/ca\.crt/);
      assert.match(stderr, /\/etc\/containers\/certs\.d\/127\.0\.0\.1:\d+\/ca\.crt/);
      assert.match(stderr, /\[host\."https:\/\/127\.0\.0\.1:\d+"\]/);
      const anonymous = await httpsGet(`${url}/v2/`, ca);
      assert.equal(anonymous.status, 401);
      // With anonymous pull on, /v2/ asks anonymous callers for a token: docker pulls that way (docs/auth.md).
      assert.match(String(anonymous.headers['www-authenticate']), /^Bearer realm="https:\/\/127\.0\.0\.1:\d+\/token",service="berth"$/);
      assert.equal((await httpsGet(`${url}/v2/any/thing/tags/list`, ca)).status, 404, 'anonymous pull reaches the repository');
      assert.equal((await httpsGet(`${url}/v2/any/thing/tags/list`, ca, { authorization: basic('alice', 'pw') })).status, 404);
      const line = JSON.parse(await berth.waitFor(/"user":"alice"/)) as Record<string, unknown>;
      assert.equal(line['path'], '/v2/any/thing/tags/list');
      await assert.rejects(httpsGet(`${url}/v2/`, Buffer.from('')), /certificate/, 'not trusted without the CA');
    } finally {
      await berth.stop();
      await temp.remove();
    }
  });
});
