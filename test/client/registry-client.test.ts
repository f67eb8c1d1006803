import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { staticCredentials } from '../../src/client/credentials.ts';
import { UpstreamError } from '../../src/client/errors.ts';
import { RegistryClient } from '../../src/client/registry-client.ts';
import { parseRepositoryName } from '../../src/oci/names.ts';
import { blobOf, pushImage, randomImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { Forwarder } from '../proxy/forwarder.ts';

const repository = parseRepositoryName('client/app');
const quickRetries = { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 };

describe('registry client', () => {
  let registry: TestRegistry;
  let front: Forwarder;
  const client = (options: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}) =>
    new RegistryClient({ host: new URL(front.url).host, baseUrl: front.url, retry: quickRetries, ...options });

  before(async () => {
    registry = await startTestRegistry();
    front = await Forwarder.start(registry.url);
  });
  after(async () => {
    await front?.close();
    await registry?.close();
  });

  test('temporary failures (503, 429 with Retry-After) are retried; others are not', async () => {
    const image = randomImage();
    await pushImage(registry.url, repository, 'v1', image);
    let failures = 2;
    front.hook = (method, path) =>
      method === 'GET' && path.endsWith('/manifests/v1') && failures-- > 0
        ? { respond: failures === 1 ? { status: 503 } : { status: 429, headers: { 'retry-after': '0' } } }
        : undefined;
    const fetched = await client().getManifest(repository, { kind: 'tag', tag: 'v1' as never });
    assert.equal(fetched.digest, image.manifest.digest);
    assert.equal(front.count('GET', '/manifests/v1'), 3);

    front.hook = (method, path) =>
      method === 'GET' && path.endsWith('/manifests/v2') ? { respond: { status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"no"}]}' } } : undefined;
    await assert.rejects(client().getManifest(repository, { kind: 'tag', tag: 'v2' as never }), (error: unknown) => {
      assert.ok(error instanceof UpstreamError);
      assert.equal(error.status, 400);
      assert.equal(error.code, 'MANIFEST_INVALID');
      assert.equal(error.temporary, false);
      return true;
    });
    assert.equal(front.count('GET', '/manifests/v2'), 1, 'a 400 is not retried');
    front.hook = undefined;
  });

  test('an unreachable registry fails after the retries, as a temporary network error', async () => {
    const unreachable = new RegistryClient({ host: '127.0.0.1:9', baseUrl: 'http://127.0.0.1:9', retry: quickRetries });
    await assert.rejects(unreachable.ping(), (error: unknown) => error instanceof UpstreamError && error.unreachable && error.temporary);
  });

  test('Basic challenges are answered with the credentials, which then go up front', async () => {
    const expected = `Basic ${Buffer.from('alice:wonderland').toString('base64')}`;
    front.hook = (_method, _path, headers) =>
      headers.authorization === expected
        ? undefined
        : { respond: { status: 401, headers: { 'www-authenticate': 'Basic realm="berth-test"' }, body: '{"errors":[{"code":"UNAUTHORIZED","message":"who are you"}]}' } };
    await assert.rejects(client().ping(), (error: unknown) => error instanceof UpstreamError && error.status === 401 && error.code === 'UNAUTHORIZED');
    const before = front.requests.length;
    const authorized = client({ credentials: staticCredentials('alice', 'wonderland') });
    await authorized.ping();
    await authorized.statBlob(repository, blobOf(Buffer.from('x')).digest);
    assert.deepEqual(
      front.requests.slice(before).map((line) => line.split(' ')[0]),
      ['GET', 'GET', 'HEAD'],
      'one 401, then credentials on every request',
    );
    front.hook = undefined;
  });

  test('a chunked upload cut off mid-chunk asks where the registry stands and resends only the rest', async () => {
    const blob = blobOf(randomBytes(300 * 1024));
    let cut = false;
    front.hook = (method, _path, headers) => {
      if (method !== 'PATCH' || cut || headers['content-range'] !== `${128 * 1024}-${256 * 1024 - 1}`) return undefined;
      cut = true;
      return { respond: { status: 503 } };
    };
    const opened: string[] = [];
    const outcome = await client().uploadBlob(
      repository,
      { digest: blob.digest, size: blob.bytes.length },
      async (range) => {
        opened.push(range === undefined ? 'all' : `${range.start}-${range.end}`);
        return Readable.from([range === undefined ? blob.bytes : blob.bytes.subarray(range.start, range.end + 1)]);
      },
      { chunkSize: 128 * 1024 },
    );
    assert.equal(outcome, 'uploaded');
    assert.deepEqual(opened, ['0-131071', '131072-262143', '131072-262143', '262144-307199']);
    assert.equal(front.count('GET', '/blobs/uploads/'), 1, 'one status query after the failure');
    const stored = await fetch(`${registry.url}/v2/${repository}/blobs/${blob.digest}`);
    assert.deepEqual(Buffer.from(await stored.arrayBuffer()), blob.bytes);
    front.hook = undefined;
  });

  test('a mount from another repository links the blob without sending it', async () => {
    const blob = blobOf(randomBytes(4096));
    const source = parseRepositoryName('client/source');
    await client().uploadBlob(source, { digest: blob.digest, size: blob.bytes.length }, async () => Readable.from([blob.bytes]));
    const outcome = await client().uploadBlob(
      repository,
      { digest: blob.digest, size: blob.bytes.length },
      async () => {
        throw new Error('the bytes must not be read');
      },
      { mountFrom: source },
    );
    assert.equal(outcome, 'mounted');
    assert.equal(await client().statBlob(repository, blob.digest), 4096);
  });

  test('tag lists follow the Link header across pages', async () => {
    const many = parseRepositoryName('client/many');
    for (const tag of ['a', 'b', 'c', 'd', 'e']) await pushImage(registry.url, many, tag, randomImage({ layers: 1 }));
    const page = await client().tags(many, { limit: 2 });
    assert.deepEqual(page.tags, ['a', 'b']);
    assert.ok(page.next !== undefined);
    assert.deepEqual(await client().allTags(many), ['a', 'b', 'c', 'd', 'e']);
  });
});
