import { digestOf, type Digest } from '../../src/oci/digest.ts';
import { mediaTypes } from '../../src/oci/media-types.ts';
import type { StoredLayer } from '../../src/meta/droplet-store.ts';
import type { Platform } from './platform.ts';

/** Where things are in the image; deploy/ and docs/deployment.md name the same paths. */
export const imagePaths = {
  node: '/usr/local/bin/node',
  app: '/opt/berth',
  config: '/etc/berth/berth.yaml',
  data: '/var/lib/berth',
} as const;

/** The user Berth runs as: numeric, so that Kubernetes can check runAsNonRoot without reading /etc/passwd. */
export const imageUser = { uid: 65532, gid: 65532, name: 'berth' } as const;

export const imagePort = 5000;

/** Below the data directory: Node's compile cache (written when Berth exits, read when it starts). */
export const compileCacheDir = '.node-compile-cache';

/** A blob with its bytes in memory (configs, manifests, indexes). */
export interface SmallBlob {
  mediaType: string;
  digest: Digest;
  size: number;
  bytes: Buffer;
}

export interface ImageFacts {
  platform: Platform;
  /** Base (Debian runtime and system files), Node, app: in this order. */
  layers: readonly { layer: StoredLayer; createdBy: string }[];
  created: Date;
  version: string;
  description: string;
  revision: string | undefined;
  nodeFlags: readonly string[];
}

export function smallBlob(mediaType: string, value: unknown): SmallBlob {
  const bytes = Buffer.from(JSON.stringify(value));
  return { mediaType, digest: digestOf(bytes), size: bytes.length, bytes };
}

/** `org.opencontainers.image.*` labels (image-spec annotations.md), the same on config and index. */
export function imageLabels(facts: Pick<ImageFacts, 'created' | 'version' | 'description' | 'revision'>): Record<string, string> {
  const labels: Record<string, string> = {
    'org.opencontainers.image.title': 'berth',
    'org.opencontainers.image.description': facts.description,
    'org.opencontainers.image.version': facts.version,
    'org.opencontainers.image.created': facts.created.toISOString(),
    'org.opencontainers.image.licenses': 'Apache-2.0',
  };
  if (facts.revision !== undefined) labels['org.opencontainers.image.revision'] = facts.revision;
  return labels;
}

/** The image config: a non-root user, the data volume, port 5000, `berth serve` with the image's configuration file. */
export function imageConfig(facts: ImageFacts): SmallBlob {
  const created = facts.created.toISOString();
  return smallBlob(mediaTypes.ociConfig, {
    created,
    architecture: facts.platform.architecture,
    ...(facts.platform.variant === undefined ? {} : { variant: facts.platform.variant }),
    os: 'linux',
    config: {
      User: `${imageUser.uid}:${imageUser.gid}`,
      ExposedPorts: { [`${imagePort}/tcp`]: {} },
      // Node keeps the code it compiled on the data volume, so that a restart starts sooner (docs/decisions.md, "Compile cache").
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', `NODE_COMPILE_CACHE=${imagePaths.data}/${compileCacheDir}`],
      Entrypoint: [imagePaths.node, ...facts.nodeFlags, `${imagePaths.app}/main.mjs`],
      Cmd: ['serve', '--config', imagePaths.config],
      WorkingDir: imagePaths.data,
      Volumes: { [imagePaths.data]: {} },
      StopSignal: 'SIGTERM',
      Labels: imageLabels(facts),
    },
    rootfs: { type: 'layers', diff_ids: facts.layers.map(({ layer }) => layer.diffId) },
    history: facts.layers.map(({ createdBy }) => ({ created, created_by: createdBy })),
  });
}

export function imageManifest(config: SmallBlob, layers: readonly StoredLayer[]): SmallBlob {
  return smallBlob(mediaTypes.ociManifest, {
    schemaVersion: 2,
    mediaType: mediaTypes.ociManifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((layer) => ({ mediaType: mediaTypes.ociLayerGzip, digest: layer.digest, size: layer.size })),
  });
}

/** One image index over the platforms' manifests. */
export function imageIndex(manifests: readonly { platform: Platform; manifest: SmallBlob }[], annotations: Record<string, string>): SmallBlob {
  return smallBlob(mediaTypes.ociIndex, {
    schemaVersion: 2,
    mediaType: mediaTypes.ociIndex,
    manifests: manifests.map(({ platform, manifest }) => ({
      mediaType: manifest.mediaType,
      digest: manifest.digest,
      size: manifest.size,
      platform: { architecture: platform.architecture, os: 'linux', ...(platform.variant === undefined ? {} : { variant: platform.variant }) },
    })),
    annotations,
  });
}

/** /etc/passwd, /etc/group and /etc/nsswitch.conf: root, nobody and Berth's user; host lookups from /etc/hosts, then DNS. */
export function systemFiles(): Record<string, string> {
  const { uid, gid, name } = imageUser;
  return {
    'etc/passwd': `root:x:0:0:root:/root:/usr/sbin/nologin\n${name}:x:${uid}:${gid}:Berth:${imagePaths.data}:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    'etc/group': `root:x:0:\n${name}:x:${gid}:\nnogroup:x:65534:\n`,
    'etc/nsswitch.conf': 'passwd: files\ngroup: files\nhosts: files dns\n',
  };
}

/** The configuration the image starts with: mount another file over it, or set BERTH_* variables (which win over it). */
export const defaultConfig = [
  "# Berth's configuration inside its container image (docs/deployment.md).",
  `# Mount your own file over ${imagePaths.config}, or set BERTH_* variables, which win over this file.`,
  `listen: 0.0.0.0:${imagePort}`,
  `dataDir: ${imagePaths.data}`,
  '',
].join('\n');
