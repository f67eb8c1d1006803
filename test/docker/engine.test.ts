import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tarOf } from '../sources/droplet/fixtures.ts';
import { dockerUnavailable, startDockerEngine, type DockerEngine } from '../helpers/dockerd.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';

/** A `docker save` archive of one layer: static busybox as /bin/sh. */
async function busyboxArchive(tag: string): Promise<Buffer> {
  const layer = await tarOf([
    { name: 'bin/', type: 'directory', mode: 0o755 },
    { name: 'bin/busybox', mode: 0o755, body: await readFile('/usr/bin/busybox') },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox', mode: 0o777 },
  ]);
  const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: [diffId] } }));
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const manifest = JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: ['layer/layer.tar'] }]);
  return tarOf([
    { name: configName, body: config },
    { name: 'layer/', type: 'directory', mode: 0o755 },
    { name: 'layer/layer.tar', body: layer },
    { name: 'manifest.json', body: manifest },
  ]);
}

describe('test helper: a Docker Engine of its own', { skip: dockerUnavailable() || missingCommands('busybox') }, () => {
  let engine: DockerEngine;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    dir = await tempDir();
    engine = await startDockerEngine();
  });
  after(async () => {
    await engine?.stop();
    await dir?.remove();
  });

  it('answers on its own socket and runs a loaded image with no network', async () => {
    assert.match(engine.host, /^unix:\/\/\/.+\/docker\.sock$/);
    assert.match(await engine.docker(['version', '--format', '{{.Server.Version}}']), /^\d+\.\d+/);
    const archive = join(dir.path, 'hello.tar');
    await writeFile(archive, await busyboxArchive('berth-test/hello:1'));
    assert.match(await engine.docker(['load', '-i', archive]), /Loaded image: berth-test\/hello:1/);
    const output = await engine.docker(['run', '--rm', '--network', 'none', 'berth-test/hello:1', '/bin/sh', '-c', 'echo hello from $(busybox uname -s)']);
    assert.equal(output.trim(), 'hello from Linux');
  });

  it("rejects with the CLI's stderr", async () => {
    await assert.rejects(engine.docker(['image', 'inspect', 'berth-test/absent:1']), /No such image/);
  });
});
