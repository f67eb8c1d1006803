import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { mediaTypes } from '../../src/oci/media-types.ts';
import { authSettings, basic } from '../helpers/auth.ts';
import { blobOf, imageIndex, manifestOf, randomImage, type TestImage, type TestManifest } from '../helpers/images.ts';
import { injectPushImage } from '../helpers/inject.ts';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.ts';
import { tempDir } from '../helpers/tmp.ts';

export const users = { alice: 'alice-pass', bob: 'bob-pass', root: 'root-pass' };
export const rootAuth = basic('root', users.root);

/** Who may do what in the UI tests: anonymous callers see public/ only; secret/ is for admins. */
export const rules = {
  admins: ['root'],
  rules: [
    { repositories: 'team/**', grants: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } },
    { repositories: 'public/**', anonymous: ['pull'], grants: { alice: ['pull', 'push', 'delete'], '*': ['pull'] } },
    { repositories: 'secret/**', grants: {} },
  ],
} as const;

export const artifactTypes = {
  signature: 'application/vnd.dev.cosign.artifact.sig.v1+json',
  sbom: 'application/spdx+json',
};

export interface UiFixture {
  registry: TestRegistry;
  app: FastifyInstance;
  /** The image tagged public/app:1.0, with a signature and an SBOM (itself signed) referring to it. */
  image: TestImage;
  index: TestManifest;
  close(): Promise<void>;
}

/** An image whose config has what the image page shows. */
function configuredImage(): TestImage {
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created: '2026-01-02T03:04:05Z',
        config: {
          Entrypoint: ['/bin/app'],
          Cmd: ['--serve'],
          Env: ['PATH=/usr/bin', 'MODE=production'],
          User: '1000',
          WorkingDir: '/srv',
          Labels: { 'org.opencontainers.image.source': 'https://example.com/app' },
        },
        history: [{ created_by: 'ADD rootfs.tar /' }, { created_by: 'COPY app /bin/app' }],
        rootfs: { type: 'layers', diff_ids: [] },
        nonce: randomBytes(4).toString('hex'),
      }),
    ),
    mediaTypes.ociConfig,
  );
  const layers = [blobOf(randomBytes(3000)), blobOf(randomBytes(5000))];
  const descriptor = (blob: { digest: string; bytes: Buffer; mediaType: string }) => ({ mediaType: blob.mediaType, digest: blob.digest, size: blob.bytes.length });
  return {
    config,
    layers,
    manifest: manifestOf({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptor(config), layers: layers.map(descriptor) }, mediaTypes.ociManifest),
  };
}

async function putManifest(app: FastifyInstance, repository: string, reference: string, manifest: TestManifest): Promise<void> {
  const response = await app.inject({
    method: 'PUT',
    url: `/v2/${repository}/manifests/${reference}`,
    headers: { authorization: rootAuth, 'content-type': manifest.mediaType },
    payload: manifest.bytes,
  });
  if (response.statusCode !== 201) throw new Error(`manifest push failed: ${response.statusCode} ${response.body}`);
}

/** A registry with users, rules, a quota, a retention policy, an immutable tag and content to look at. */
export async function startUiFixture(extra: Record<string, unknown> = {}): Promise<UiFixture> {
  const dir = await tempDir('berth-ui');
  const settings = await authSettings(dir.path, {
    users,
    rules: rules as never,
    extra: {
      quotas: [{ name: 'team', repositories: ['team/**'], maxBytes: 1024 * 1024, maxRepositories: 10 }],
      retention: { policies: [{ repositories: ['public/**'], keepLatest: 2 }], dryRun: true, interval: 0 },
      immutableTags: [{ repositories: ['public/**'], tags: ['1.0'] }],
      ...extra,
    },
  });
  const registry = await startTestRegistry(settings);
  const app = registry.server.app;
  const image = configuredImage();
  await injectPushImage(app, rootAuth, 'public/app', '1.0', image);
  await injectPushImage(app, rootAuth, 'public/app', '1.1', randomImage());
  await injectPushImage(app, rootAuth, 'public/app', 'latest', randomImage());
  const amd = randomImage();
  const arm = randomImage();
  await injectPushImage(app, rootAuth, 'public/app', amd.manifest.digest, amd);
  await injectPushImage(app, rootAuth, 'public/app', arm.manifest.digest, arm);
  const index = imageIndex([
    { image: amd, os: 'linux', architecture: 'amd64' },
    { image: arm, os: 'linux', architecture: 'arm64' },
  ]);
  await putManifest(app, 'public/app', 'multi', index);
  const signature = randomImage({ layers: 1, layerSize: 64, subject: image.manifest, artifactType: artifactTypes.signature });
  const sbom = randomImage({ layers: 1, layerSize: 256, subject: image.manifest, artifactType: artifactTypes.sbom });
  const sbomSignature = randomImage({ layers: 1, layerSize: 64, subject: sbom.manifest, artifactType: artifactTypes.signature });
  for (const referrer of [signature, sbom, sbomSignature]) await injectPushImage(app, rootAuth, 'public/app', referrer.manifest.digest, referrer);
  for (const name of ['team/web', 'team/api', 'team/tools/builder']) await injectPushImage(app, rootAuth, name, 'latest', randomImage());
  await injectPushImage(app, rootAuth, 'team/web', 'v2', randomImage());
  await injectPushImage(app, rootAuth, 'secret/keys', 'latest', randomImage());
  return {
    registry,
    app,
    image,
    index,
    async close() {
      await registry.close();
      await dir.remove();
    },
  };
}
