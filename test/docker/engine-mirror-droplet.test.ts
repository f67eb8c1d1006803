import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { pushImage } from '../helpers/images.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';
import { Forwarder } from '../proxy/forwarder.ts';
import { buildDroplet, writeRootfs } from '../sources/droplet/fixtures.ts';
import { busyboxLayer, filesLayer, imageId, layeredImage } from './images.ts';

function skipReason(): string | false {
  return dockerUnavailable() || missingCommands('busybox', 'bash-static');
}

describe('Docker Engine with Berth as its registry mirror, and running droplet images', { skip: skipReason() }, () => {
  let upstream: TestRegistry;
  let forwarder: Forwarder;
  let berth: TestRegistry;
  let engine: DockerEngine;
  let temp: { path: string; remove(): Promise<void> };

  before(async () => {
    temp = await tempDir('berth-docker-mirror');
    upstream = await startTestRegistry();
    forwarder = await Forwarder.start(upstream.url);
    const rootfs = join(temp.path, 'cflinuxfs.tar.gz');
    await writeRootfs(rootfs, 'docker', true, true);
    berth = await startTestRegistry({
      repositories: [
        // What docs/proxy.md says to set up for registry-mirrors: unprefixed names are the Docker Hub cache.
        { prefix: '', kind: 'proxy', upstream: forwarder.url, officialImages: true, tagTtl: 0, failureBackoff: 0, namespaces: ['docker.io'] },
        { prefix: 'cf/', kind: 'droplet', rootfs },
      ],
    });
    engine = await startDockerEngine({ mirrors: [`http://${berth.host}`] });
  });
  after(async () => {
    await engine?.stop();
    await berth?.close();
    await forwarder?.close().catch(() => undefined);
    await upstream?.close();
    await temp?.remove();
  });

  test('docker pull of an official image goes through the proxy repository named in registry-mirrors', async () => {
    const hello = layeredImage([await busyboxLayer(), await filesLayer({ 'msg.txt': 'from the mirror\n' })], ['/bin/cat', '/msg.txt']);
    await pushImage(upstream.url, 'library/hello', '1', hello);
    await engine.docker(['pull', 'hello:1']);
    assert.equal(await imageId(engine, 'hello:1'), hello.config.digest);
    assert.ok(forwarder.count('GET', '/v2/library/hello/manifests/1') >= 1, 'Berth fetched the manifest from its upstream');
    assert.equal(await engine.docker(['run', '--rm', '--network', 'none', 'hello:1']), 'from the mirror\n');
  });

  test('a droplet image is pulled and run by Docker Engine as vcap with its start command', async () => {
    const upload = await fetch(`${berth.url}/v2/cf/dev/shop/blobs/?guid=droplet-1`, { method: 'POST', body: await buildDroplet() });
    assert.equal(upload.status, 201);
    const name = `${berth.host}/cf/dev/shop:latest`;
    await engine.docker(['pull', name]);
    const output = await engine.docker(['run', '--rm', '--network', 'none', name]);
    const lines = output.trim().split('\n');
    assert.ok(lines.includes('greeting=hello'), output);
    assert.ok(lines.includes('uid=2000 gid=2000 pwd=/home/vcap/app home=/home/vcap/app port=8080 tmpdir=/home/vcap/tmp'), output);
    assert.ok(lines.includes('data=linked content'), output);
  });
});
