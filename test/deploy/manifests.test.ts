import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { bundleEntry, projectRoot } from '../../scripts/image/bundle.ts';
import { nodeFlags } from '../../scripts/image/build.ts';
import { imagePaths, imagePort, imageUser } from '../../scripts/image/compose.ts';
import { environmentKeys, loadConfig } from '../../src/config/load.ts';
import { splitHostPort } from '../../src/config/units.ts';
import { startBerthServer, type BerthProcess } from '../helpers/process.ts';
import { tempDir } from '../helpers/tmp.ts';
import { missingCommands } from '../helpers/tools.ts';

/** Kubernetes objects as plain data; the checks below read only what they need. */
type Json = Record<string, unknown>;
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Json;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  file: string;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  envFrom?: { secretRef?: { name: string } }[];
  env?: { name: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
}
interface PodSpec {
  containers: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  hostNetwork?: boolean;
}

const deployDir = join(projectRoot, 'deploy');
const namespaced = new Set(['ConfigMap', 'Secret', 'Deployment', 'DaemonSet', 'Service', 'PersistentVolumeClaim', 'PodDisruptionBudget']);

async function filesUnder(dir: string, suffix: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
}

/** Every object of every manifest set (a directory with a kustomization.yaml), by set. */
async function manifestSets(): Promise<Map<string, K8sObject[]>> {
  const sets = new Map<string, K8sObject[]>();
  for (const kustomization of await filesUnder(join(deployDir, 'kubernetes'), 'kustomization.yaml')) {
    const dir = dirname(kustomization);
    const { resources } = parseYaml(await readFile(kustomization, 'utf8')) as { resources: string[] };
    const objects: K8sObject[] = [];
    for (const resource of resources) {
      const file = join(dir, resource);
      for (const document of parseAllDocuments(await readFile(file, 'utf8'))) {
        assert.deepEqual(document.errors, [], `${file} parses`);
        objects.push({ ...(document.toJS() as Omit<K8sObject, 'file'>), file: relative(projectRoot, file) });
      }
    }
    sets.set(relative(projectRoot, dir), objects);
  }
  return sets;
}

const podSpecOf = (object: K8sObject) => (object.spec?.['template'] as Json | undefined)?.['spec'] as PodSpec | undefined;
const podLabelsOf = (object: K8sObject) => (object.spec?.['template'] as { metadata?: { labels?: Record<string, string> } } | undefined)?.metadata?.labels ?? {};
const matches = (selector: Record<string, string>, labels: Record<string, string>) => Object.entries(selector).every(([key, value]) => labels[key] === value);

describe('deploy/ manifests', () => {
  let sets: Map<string, K8sObject[]>;
  let version: string;
  before(async () => {
    sets = await manifestSets();
    ({ version } = JSON.parse(await readFile(join(projectRoot, 'package.json'), 'utf8')) as { version: string });
  });

  it('are the three Kubernetes setups: one instance on a volume claim, replicas on S3 and PostgreSQL, the per-node DaemonSet', () => {
    const kinds = (set: string) => (sets.get(set) ?? []).map((object) => object.kind).sort();
    assert.deepEqual(kinds('deploy/kubernetes/single'), ['ConfigMap', 'Deployment', 'Namespace', 'PersistentVolumeClaim', 'Service']);
    assert.deepEqual(kinds('deploy/kubernetes/replicas'), ['ConfigMap', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'Secret', 'Service']);
    assert.deepEqual(kinds('deploy/kubernetes'), ['ConfigMap', 'DaemonSet', 'Namespace']);
  });

  it('name every object, in the berth namespace', () => {
    for (const objects of sets.values()) {
      for (const object of objects) {
        assert.ok(object.apiVersion && object.kind && object.metadata?.name, `${object.file}: apiVersion, kind and metadata.name`);
        if (namespaced.has(object.kind)) assert.equal(object.metadata.namespace, 'berth', `${object.file}: ${object.kind} ${object.metadata.name}`);
      }
    }
  });

  it("run the image `npm run image` builds, as its non-root user on a read-only root, with probes on the container's port", () => {
    for (const objects of sets.values()) {
      for (const workload of objects.filter((object) => object.kind === 'Deployment' || object.kind === 'DaemonSet')) {
        const where = `${workload.file}: ${workload.kind} ${workload.metadata.name}`;
        const pod = podSpecOf(workload);
        assert.ok(pod !== undefined, where);
        assert.ok(
          matches((workload.spec?.['selector'] as { matchLabels: Record<string, string> } | undefined)?.matchLabels ?? {}, podLabelsOf(workload)),
          `${where}: selector matches the pod`,
        );
        assert.equal(pod.securityContext?.runAsNonRoot, true, where);
        assert.equal(pod.securityContext?.runAsUser, imageUser.uid, where);
        const [container] = pod.containers;
        assert.ok(container !== undefined, where);
        assert.match(container.image, new RegExp(`/berth:${version.replaceAll('.', '\\.')}$`), `${where}: the image and version npm run image tags`);
        assert.equal(container.securityContext?.readOnlyRootFilesystem, true, where);
        assert.equal(container.securityContext?.allowPrivilegeEscalation, false, where);
        const ports = container.ports ?? [];
        assert.ok(
          ports.some((port) => port.containerPort === imagePort),
          `${where}: port ${imagePort}`,
        );
        const portOk = (port: string | number | undefined) => ports.some((candidate) => candidate.name === port || candidate.containerPort === port);
        assert.equal(container.readinessProbe?.httpGet?.path, '/readyz', where);
        assert.equal(container.livenessProbe?.httpGet?.path, '/livez', where);
        assert.ok(portOk(container.readinessProbe?.httpGet?.port) && portOk(container.livenessProbe?.httpGet?.port), `${where}: probes on a container port`);
        const volumes = new Set((pod.volumes ?? []).map((volume) => volume.name));
        for (const mount of container.volumeMounts ?? []) assert.ok(volumes.has(mount.name), `${where}: volume ${mount.name}`);
        assert.ok(
          (container.volumeMounts ?? []).some((mount) => mount.mountPath === imagePaths.data),
          `${where}: a volume on ${imagePaths.data} (the root is read-only)`,
        );
        for (const { secretRef } of container.envFrom ?? []) {
          if (secretRef !== undefined)
            assert.ok(
              objects.some((object) => object.kind === 'Secret' && object.metadata.name === secretRef.name),
              `${where}: Secret ${secretRef.name}`,
            );
        }
      }
    }
  });

  it("give Berth configuration files and BERTH_* variables its schema knows, listening where the pod's port and probes are", async () => {
    const temp = await tempDir('berth-manifests');
    try {
      const keys = environmentKeys();
      for (const objects of sets.values()) {
        for (const workload of objects.filter((object) => object.kind === 'Deployment' || object.kind === 'DaemonSet')) {
          const pod = podSpecOf(workload) as PodSpec;
          const container = pod.containers[0] as Container;
          const configArg = container.args?.[(container.args?.indexOf('--config') ?? -1) + 1];
          assert.ok(configArg !== undefined, `${workload.file}: --config`);
          const mount = (container.volumeMounts ?? []).find((candidate) => configArg.startsWith(`${candidate.mountPath}/`));
          const volume = (pod.volumes ?? []).find((candidate) => candidate.name === mount?.name);
          const configMap = objects.find((object) => object.kind === 'ConfigMap' && object.metadata.name === volume?.configMap?.name);
          const text = configMap?.data?.[posix.basename(configArg)];
          assert.ok(text !== undefined, `${workload.file}: ${configArg} comes from a ConfigMap in the set`);
          const file = join(temp.path, `${workload.metadata.name}.yaml`);
          await writeFile(file, text);
          const config = await loadConfig({ file, env: {} });
          assert.equal(splitHostPort(config.listen).port, imagePort, `${workload.file}: listens on the container's port`);
          assert.equal(config.dataDir, imagePaths.data);
          for (const secret of objects.filter((object) => object.kind === 'Secret')) {
            for (const name of Object.keys({ ...secret.stringData, ...secret.data }).filter((key) => key.startsWith('BERTH_'))) {
              assert.ok(keys.has(name), `${secret.file}: ${name} is a configuration key`);
            }
          }
        }
      }
    } finally {
      await temp.remove();
    }
  });

  it('route Services and disruption budgets to the pods, on a port the container names', () => {
    for (const objects of sets.values()) {
      const workloads = objects.filter((object) => object.kind === 'Deployment' || object.kind === 'DaemonSet');
      for (const object of objects.filter((candidate) => candidate.kind === 'Service' || candidate.kind === 'PodDisruptionBudget')) {
        const selector =
          object.kind === 'Service'
            ? (object.spec?.['selector'] as Record<string, string>)
            : ((object.spec?.['selector'] as { matchLabels: Record<string, string> } | undefined)?.matchLabels ?? {});
        const targets = workloads.filter((workload) => matches(selector, podLabelsOf(workload)));
        assert.equal(targets.length, 1, `${object.file}: ${object.kind} ${object.metadata.name} selects one workload`);
        if (object.kind === 'Service') {
          const ports = (podSpecOf(targets[0] as K8sObject) as PodSpec).containers[0]?.ports ?? [];
          for (const port of (object.spec?.['ports'] as { targetPort: string | number }[] | undefined) ?? []) {
            assert.ok(
              ports.some((candidate) => candidate.name === port.targetPort || candidate.containerPort === port.targetPort),
              `${object.file}: targetPort ${port.targetPort}`,
            );
          }
        }
      }
    }
  });

  it("point containerd's hosts.toml at Berth's plain-HTTP port on the node", async () => {
    const files = await filesUnder(join(deployDir, 'kubernetes', 'containerd'), 'hosts.toml');
    assert.equal(files.length, 2);
    for (const file of files) {
      const text = await readFile(file, 'utf8');
      assert.match(text, /^server = "https?:\/\/[^"]+"$/m, file);
      const hosts = [...text.matchAll(/^\[host\."([^"]+)"\]$/gm)].map((match) => match[1]);
      for (const host of hosts) assert.equal(host, `http://127.0.0.1:${imagePort}`, file);
      if (hosts.length === 0) assert.match(text, new RegExp(`^server = "http://[^"]+:${imagePort}"$`, 'm'), file);
    }
  });

  it('run the bundle under systemd with the Node flags and configuration the image uses', async () => {
    const unit = await readFile(join(deployDir, 'systemd', 'berth.service'), 'utf8');
    const exec = /^ExecStart=(.*)$/m.exec(unit)?.[1]?.split(/\s+/) ?? [];
    assert.deepEqual(exec, ['/opt/berth/node', ...(await nodeFlags()), `/opt/berth/${bundleEntry}`, 'serve', '--config', imagePaths.config]);
    assert.match(unit, /^StateDirectory=berth$/m);
    assert.match(unit, /^KillSignal=SIGTERM$/m);
    const config = await loadConfig({ file: join(deployDir, 'systemd', 'berth.yaml'), env: {} });
    assert.equal(config.dataDir, '/var/lib/berth', 'the StateDirectory');
  });
});

describe('the systemd unit', { skip: missingCommands('systemd-analyze') }, () => {
  /** What `systemd-analyze verify` says of the unit, its ExecStart binary replaced by a stand-in (/opt/berth/node exists only on a VM it is installed on). */
  const verify = async (unitText: string): Promise<string> => {
    const temp = await tempDir('berth-unit');
    try {
      const node = join(temp.path, 'node');
      await writeFile(node, '#!/bin/sh\n', { mode: 0o755 });
      const unit = join(temp.path, 'berth.service');
      await writeFile(unit, unitText.replaceAll('/opt/berth/node', node));
      const result = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
      return `${result.stdout}${result.stderr}${result.status === 0 ? '' : `exit ${result.status}`}`.trim();
    } finally {
      await temp.remove();
    }
  };

  it('passes systemd-analyze verify with nothing to say, which it does not for a unit with a mistake', async () => {
    const unit = await readFile(join(deployDir, 'systemd', 'berth.service'), 'utf8');
    assert.equal(await verify(unit), '');
    assert.match(await verify(unit.replace('TimeoutStopSec=40', 'TimeoutStopSec=forty')), /Failed to parse/);
    assert.match(await verify(unit.replace('StateDirectory=', 'StateDirectorie=')), /Unknown key/);
  });
});

describe('the probe endpoints the manifests name', () => {
  let berth: BerthProcess & { url: string };
  let temp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    temp = await tempDir('berth-probes');
    berth = await startBerthServer(['--data', temp.path]);
  });
  after(async () => {
    await berth.stop();
    await temp.remove();
  });

  for (const path of ['/livez', '/readyz', '/healthz']) {
    it(`${path} answers 200 on a healthy Berth`, async () => {
      const response = await fetch(`${berth.url}${path}`);
      const body = (await response.json()) as { status: string };
      assert.equal(response.status, 200);
      assert.equal(body.status, path === '/readyz' ? 'ready' : 'ok');
    });
  }
});
