import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { realImage } from '../copy/fixtures.ts';
import { containerdUnavailable, startContainerd } from '../helpers/containerd.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { run } from '../helpers/tools.ts';

/**
 * containerd configured as docs/proxy.md says (a hosts.toml naming Berth as
 * the mirror of docker.io), pulling an unchanged Docker Hub name. The
 * "Docker Hub" here is another Berth; nothing leaves the machine.
 */
describe('containerd pulls docker.io images through a Berth mirror set in hosts.toml', { skip: containerdUnavailable() }, () => {
  let upstream: TestRegistry;
  let mirror: TestRegistry;
  let temp: { path: string; remove(): Promise<void> };

  before(async () => {
    temp = await tempDir('berth-containerd-mirror');
    upstream = await startTestRegistry();
    mirror = await startTestRegistry(
      { repositories: [{ prefix: 'docker.io/', kind: 'proxy', upstream: upstream.url, namespaces: ['docker.io'], officialImages: true }] },
      { captureLogs: true },
    );
  });
  after(async () => {
    await mirror?.close();
    await upstream?.close();
    await temp?.remove();
  });

  it('resolves and pulls docker.io/library/alpine:3 with ?ns=docker.io, and caches it', async () => {
    const image = await realImage({ layers: 2 });
    await pushImage(upstream.url, 'library/alpine', '3', image);
    const hosts = join(temp.path, 'certs.d');
    await mkdir(join(hosts, 'docker.io'), { recursive: true });
    // No `server`: containerd may only go through the mirror (the real Docker Hub is out of reach here anyway).
    await writeFile(join(hosts, 'docker.io', 'hosts.toml'), `[host."${mirror.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    const containerd = await startContainerd(join(temp.path, 'containerd'));
    try {
      const ctr = ['--address', containerd.socket, 'images'];
      await run('ctr', [...ctr, 'pull', '--hosts-dir', hosts, '--snapshotter', 'native', 'docker.io/library/alpine:3']);
      const listed = await run('ctr', [...ctr, 'ls', '-q']);
      assert.match(listed, /^docker\.io\/library\/alpine:3$/m);
    } finally {
      await containerd.stop();
    }
    const requests = mirror.logs.filter((line) => typeof line['path'] === 'string' && (line['path'] as string).startsWith('/v2/library/alpine/'));
    assert.ok(requests.length >= 3, 'manifest and layers came through the mirror');
    assert.ok(
      requests.every((line) => (line['path'] as string).includes('ns=docker.io')),
      'containerd names the registry in ns',
    );
    assert.ok(
      requests.every((line) => line['status'] === 200),
      JSON.stringify(requests.map((line) => [line['path'], line['status']])),
    );
    // Cached: the mirror now holds the image as hosted content under its prefix.
    const tags = (await (await fetch(`${mirror.url}/v2/docker.io/library/alpine/tags/list`)).json()) as { tags: string[] };
    assert.ok(tags.tags.includes('3'));
  });
});
