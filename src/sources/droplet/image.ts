import { digestOf, type Digest } from '../../oci/digest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import type { RecordImage, RootfsImage, StagedDroplet, StoredLayer } from '../../meta/droplet-store.ts';
import type { RepositoryName } from '../../oci/names.ts';
import type { AppRef, ProcessFacts } from './apps.ts';
import type { DropletOwner } from './droplet-layer.ts';

/** Where the app lives in the image, as Cloud Foundry lays it out. */
export const appDirectory = '/home/vcap/app';

/** The environment Cloud Foundry gives every app instance, less what only a running platform knows. */
export const dropletEnvironment: readonly string[] = [
  `HOME=${appDirectory}`,
  'PORT=8080',
  'LANG=en_US.UTF-8',
  'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  'TMPDIR=/home/vcap/tmp',
  'DEPS_DIR=/home/vcap/deps',
];

/**
 * What the Cloud Foundry launcher does before an app starts: from the app
 * directory, source the buildpacks' ../profile.d/* scripts, then the app's
 * own .profile.d/* and .profile, then run the start command ($1) with bash.
 */
export const launcherScript = [
  `cd ${appDirectory} || exit 1`,
  'for script in ../profile.d/* .profile.d/*; do if [ -f "$script" ]; then . "$script"; fi; done',
  'if [ -f .profile ]; then . ./.profile; fi',
  'exec bash -c "$1"',
].join('\n');

/** Label keys naming what an image was composed from. */
export const labels = {
  appName: 'org.cloudfoundry.app.name',
  appGuid: 'org.cloudfoundry.app.guid',
  dropletGuid: 'org.cloudfoundry.droplet.guid',
  dropletDigest: 'org.cloudfoundry.droplet.digest',
  rootfsDigest: 'org.cloudfoundry.rootfs.digest',
  processType: 'org.cloudfoundry.process.type',
} as const;

/** Cloud Foundry's file descriptor limit, which VCAP_APPLICATION reports. */
const fdsLimit = 16384;

/**
 * The image's environment: what Cloud Foundry gives every instance and
 * Berth knows ahead of run time (VCAP_APPLICATION from the Cloud
 * Controller's app, space, organization and process; MEMORY_LIMIT; index 0
 * for a single instance), then the operator's variables. What only exists
 * at run time (VCAP_SERVICES, CF_INSTANCE_IP, …) is left to the runtime.
 */
export function environmentOf(inputs: ImageInputs): string[] {
  const { app, process } = inputs;
  const vcap: Record<string, unknown> = { application_id: app.guid ?? null, application_name: app.name, application_uris: process.uris ?? [] };
  if (inputs.cfApi !== undefined) vcap['cf_api'] = inputs.cfApi;
  const limits: Record<string, number> = { fds: fdsLimit };
  if (process.diskMb !== undefined) limits['disk'] = process.diskMb;
  if (process.memoryMb !== undefined) limits['mem'] = process.memoryMb;
  vcap['limits'] = limits;
  vcap['name'] = app.name;
  if (app.organization !== undefined) Object.assign(vcap, { organization_id: app.organization.guid, organization_name: app.organization.name });
  vcap['process_type'] = inputs.processType;
  if (app.space !== undefined) Object.assign(vcap, { space_id: app.space.guid, space_name: app.space.name });
  vcap['uris'] = process.uris ?? [];
  const variables = new Map<string, string>(dropletEnvironment.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
  variables.set('USER', 'vcap');
  variables.set('VCAP_APPLICATION', JSON.stringify(vcap));
  variables.set('VCAP_APP_HOST', '0.0.0.0');
  variables.set('VCAP_APP_PORT', variables.get('PORT') ?? '8080');
  variables.set('INSTANCE_INDEX', '0');
  variables.set('CF_INSTANCE_INDEX', '0');
  if (process.memoryMb !== undefined) variables.set('MEMORY_LIMIT', `${process.memoryMb}m`);
  for (const [name, value] of Object.entries(inputs.environment)) variables.set(name, value);
  return [...variables].map(([name, value]) => `${name}=${value}`);
}

export interface ImageInputs {
  rootfs: StoredLayer;
  droplet: StoredLayer;
  architecture: string;
  owner: DropletOwner;
  /** The command the process starts with; no Cmd when unknown. */
  startCommand: string | undefined;
  app: AppRef;
  /** The process type the image runs (`web` unless a tag names another). */
  processType: string;
  process: ProcessFacts;
  /** The Cloud Controller's API, for VCAP_APPLICATION's cf_api. */
  cfApi?: string;
  /** Variables the operator configured for the prefix; they override Berth's. */
  environment: Readonly<Record<string, string>>;
  dropletGuid: string;
  dropletDigest: Digest;
  /** The image's `created`: the droplet's own creation time, or a fixed time (uploads). */
  created: Date;
}

export type ImageFormat = 'oci' | 'docker';

/** Config and manifest bytes, the same for the same inputs (every key in a fixed order). */
export interface ComposedImage {
  config: { digest: Digest; size: number; bytes: Uint8Array };
  manifest: { digest: Digest; mediaType: string; bytes: Uint8Array };
}

export function composeImage(inputs: ImageInputs, format: ImageFormat): ComposedImage {
  const configBytes = Buffer.from(JSON.stringify(imageConfig(inputs)));
  const config = { digest: digestOf(configBytes), size: configBytes.length, bytes: configBytes };
  const types =
    format === 'oci'
      ? { manifest: mediaTypes.ociManifest, config: mediaTypes.ociConfig, layer: mediaTypes.ociLayerGzip }
      : { manifest: mediaTypes.dockerManifest, config: mediaTypes.dockerConfig, layer: mediaTypes.dockerLayerGzip };
  const descriptor = (mediaType: string, blob: { digest: Digest; size: number }) => ({ mediaType, digest: blob.digest, size: blob.size });
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: types.manifest,
      config: descriptor(types.config, config),
      layers: [descriptor(types.layer, inputs.rootfs), descriptor(types.layer, inputs.droplet)],
    }),
  );
  return { config, manifest: { digest: digestOf(manifestBytes), mediaType: types.manifest, bytes: manifestBytes } };
}

function imageConfig(inputs: ImageInputs): Record<string, unknown> {
  const created = inputs.created.toISOString();
  const imageLabels: Record<string, string> = { [labels.appName]: inputs.app.name };
  if (inputs.app.guid !== undefined) imageLabels[labels.appGuid] = inputs.app.guid;
  imageLabels[labels.dropletGuid] = inputs.dropletGuid;
  imageLabels[labels.dropletDigest] = inputs.dropletDigest;
  imageLabels[labels.rootfsDigest] = inputs.rootfs.digest;
  imageLabels[labels.processType] = inputs.processType;
  const runtime: Record<string, unknown> = {
    // Numeric, so that Kubernetes can verify runAsNonRoot without a passwd lookup.
    User: `${inputs.owner.uid}:${inputs.owner.gid}`,
    ExposedPorts: { '8080/tcp': {} },
    Env: environmentOf(inputs),
  };
  if (inputs.startCommand !== undefined) runtime['Cmd'] = ['/bin/bash', '-c', launcherScript, 'launcher', inputs.startCommand];
  runtime['WorkingDir'] = appDirectory;
  runtime['Labels'] = imageLabels;
  return {
    created,
    architecture: inputs.architecture,
    os: 'linux',
    config: runtime,
    rootfs: { type: 'layers', diff_ids: [inputs.rootfs.diffId, inputs.droplet.diffId] },
    history: [
      { created_by: `berth: Cloud Foundry rootfs ${inputs.rootfs.digest}` },
      { created, created_by: `berth: droplet ${inputs.dropletGuid} of ${inputs.app.name} under /home/vcap` },
    ],
  };
}

/**
 * A rootfs alone as an image (`<prefix>rootfs`): what keeps its layer
 * linked while it is current or within retention, and a base to inspect.
 */
export function composeRootfsImage(repository: RepositoryName, rootfs: StoredLayer, architecture: string): RootfsImage & { configBytes: Uint8Array } {
  const configBytes = Buffer.from(
    JSON.stringify({
      created: new Date(0).toISOString(),
      architecture,
      os: 'linux',
      config: { Env: [dropletEnvironment.find((entry) => entry.startsWith('PATH=')) ?? ''], Cmd: ['/bin/bash'] },
      rootfs: { type: 'layers', diff_ids: [rootfs.diffId] },
      history: [{ created_by: `berth: Cloud Foundry rootfs ${rootfs.digest}` }],
    }),
  );
  const config = { digest: digestOf(configBytes), size: configBytes.length };
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      config: { mediaType: mediaTypes.ociConfig, ...config },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: rootfs.digest, size: rootfs.size }],
    }),
  );
  return { repository, digest: digestOf(bytes), mediaType: mediaTypes.ociManifest, bytes, config, configBytes };
}

/** The empty JSON object, the config of artifact manifests (OCI image spec, "empty descriptor"). */
export const emptyConfig = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}'), digest: digestOf(Buffer.from('{}')), size: 2 };

/** The artifact type of a droplet record. */
export const dropletArtifactType = 'application/vnd.cloudfoundry.droplet.v1';

/**
 * A droplet as an OCI artifact manifest of its app's repository: its
 * converted layer, the guid and droplet digest as annotations. It keeps
 * the layer linked for as long as the droplet is kept, composed or not,
 * under the tag `droplet-<sha256 of the guid>` (guids may be as long as a tag).
 */
export function composeDropletRecord(repository: RepositoryName, droplet: StagedDroplet): RecordImage {
  const bytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: mediaTypes.ociManifest,
      artifactType: dropletArtifactType,
      config: { mediaType: emptyConfig.mediaType, digest: emptyConfig.digest, size: emptyConfig.size },
      layers: [{ mediaType: mediaTypes.ociLayerGzip, digest: droplet.layer.digest, size: droplet.layer.size }],
      annotations: { [labels.dropletGuid]: droplet.guid, [labels.dropletDigest]: droplet.dropletDigest },
    }),
  );
  const tag = `droplet-${digestOf(Buffer.from(droplet.guid)).slice('sha256:'.length)}`;
  return { repository, digest: digestOf(bytes), mediaType: mediaTypes.ociManifest, bytes, config: { digest: emptyConfig.digest, size: emptyConfig.size }, tag };
}
