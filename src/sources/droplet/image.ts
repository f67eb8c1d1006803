import { digestOf, type Digest } from '../../oci/digest.ts';
import { mediaTypes } from '../../oci/media-types.ts';
import type { StoredLayer } from './droplet-index.ts';
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
} as const;

export interface ImageInputs {
  rootfs: StoredLayer;
  droplet: StoredLayer;
  architecture: string;
  owner: DropletOwner;
  /** The command the app starts with; no Cmd when unknown. */
  startCommand: string | undefined;
  appName: string;
  appGuid?: string;
  dropletGuid: string;
  dropletDigest: Digest;
  /** When the droplet was staged: the image's `created`. */
  stagedAt: Date;
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
  const created = inputs.stagedAt.toISOString();
  const imageLabels: Record<string, string> = { [labels.appName]: inputs.appName };
  if (inputs.appGuid !== undefined) imageLabels[labels.appGuid] = inputs.appGuid;
  imageLabels[labels.dropletGuid] = inputs.dropletGuid;
  imageLabels[labels.dropletDigest] = inputs.dropletDigest;
  imageLabels[labels.rootfsDigest] = inputs.rootfs.digest;
  const runtime: Record<string, unknown> = {
    // Numeric, so that Kubernetes can verify runAsNonRoot without a passwd lookup.
    User: `${inputs.owner.uid}:${inputs.owner.gid}`,
    ExposedPorts: { '8080/tcp': {} },
    Env: dropletEnvironment,
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
      { created, created_by: `berth: droplet ${inputs.dropletGuid} of ${inputs.appName} under /home/vcap` },
    ],
  };
}
