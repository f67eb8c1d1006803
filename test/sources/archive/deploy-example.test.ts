import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import { startTestRegistry } from '../../helpers/registry.ts';
import { randomImage } from '../../helpers/images.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { writeOciArchive } from './fixtures.ts';

const deploy = join(import.meta.dirname, '../../../deploy/kubernetes');

interface Container {
  readinessProbe: { httpGet: { host: string; port: number; path: string } };
  volumeMounts: { name: string; mountPath: string }[];
}

interface DaemonSet {
  kind: string;
  spec: { template: { spec: { hostNetwork?: boolean; containers: Container[] } } };
}

async function example(): Promise<{ berthYaml: string; daemonSet: DaemonSet; container: Container }> {
  const configMap = parse(await readFile(join(deploy, 'configmap.yaml'), 'utf8')) as { data: Record<string, string> };
  const documents = parseAllDocuments(await readFile(join(deploy, 'daemonset.yaml'), 'utf8')).map((document) => document.toJS() as DaemonSet);
  const daemonSet = documents.find((document) => document.kind === 'DaemonSet');
  const container = daemonSet?.spec.template.spec.containers[0];
  assert.ok(daemonSet !== undefined && container !== undefined);
  return { berthYaml: configMap.data['berth.yaml'] ?? '', daemonSet, container };
}

describe('deploy/kubernetes example', () => {
  test('the ConfigMap holds a valid Berth configuration matching the DaemonSet mounts and probe', async () => {
    const { berthYaml, daemonSet, container } = await example();
    const work = await tempDir('berth-deploy');
    try {
      const file = join(work.path, 'berth.yaml');
      await writeFile(file, berthYaml);
      const config = await loadConfig({ env: {}, file });
      const archive = config.repositories.find((entry) => entry.kind === 'archive');
      assert.ok(archive !== undefined && archive.kind === 'archive');
      const mounts = container.volumeMounts.map((mount) => mount.mountPath);
      assert.ok(mounts.includes(archive.directory), 'the archive directory is mounted');
      assert.ok(mounts.includes(config.dataDir), 'the data directory is mounted');
      assert.equal(`${container.readinessProbe.httpGet.host}:${container.readinessProbe.httpGet.port}`, config.listen);
      assert.equal(container.readinessProbe.httpGet.path, '/readyz');
      assert.equal(daemonSet.spec.template.spec.hostNetwork, true);
    } finally {
      await work.remove();
    }
  });

  test('Berth run with that configuration (paths and port swapped for the test) is ready and serves the archives', async () => {
    const { berthYaml } = await example();
    const settings = parse(berthYaml) as { repositories: Record<string, unknown>[] };
    const archives = await tempDir('berth-deploy-images');
    await writeOciArchive(join(archives.path, 'team/app.oci'), [{ image: randomImage(), tags: ['1.0'] }]);
    const repositories = settings.repositories.map((entry) => ({ ...entry, directory: archives.path }));
    const registry = await startTestRegistry({ repositories });
    try {
      assert.equal((await fetch(`${registry.url}/healthz`)).status, 200);
      assert.equal((await fetch(`${registry.url}/v2/team/app/manifests/1.0`, { method: 'HEAD' })).status, 200);
    } finally {
      await registry.close();
      await archives.remove();
    }
  });
});
