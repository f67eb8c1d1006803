import { byteSize, duration } from './units.ts';
import * as z from './zod.ts';

/**
 * A name prefix served by one repository kind. Names not matched by any
 * entry are hosted. Each kind adds its own options next to `kind`.
 */
const prefix = z.string().check(z.regex(/^([a-z0-9]+([._-][a-z0-9]+)*\/)*$/, 'expected a repository name prefix ending in "/", such as "mirror/" (or "" for every name)'));

const nonEmpty = () => z.string().check(z.minLength(1));

export const hostedRepositories = z.strictObject({ prefix, kind: z.literal('hosted') });

/** Images read straight from OCI and Docker archives in a directory (docs/archives.md). */
export const archiveRepositories = z.strictObject({
  prefix,
  kind: z.literal('archive'),
  /** The directory holding the archives; the name rules apply relative to it. */
  directory: nonEmpty(),
  /** How often the whole directory is scanned again (changes made on other NFS clients are seen this way); 0 turns it off. */
  rescanInterval: z.prefault(duration, '10m'),
  /** Rescan soon after a local change is reported by the kernel. */
  watch: z._default(z.boolean(), true),
});

/** Where a droplet repository finds apps in Cloud Foundry (names resolved through the Cloud Controller v3 API). */
const cloudController = z
  .strictObject({
    /** The Cloud Controller API, such as https://api.sys.example.com; UAA is discovered from its root. */
    url: z.url({ protocol: /^https?$/ }),
    clientId: nonEmpty(),
    clientSecret: z.optional(nonEmpty()),
    /** A file holding the client secret (a mounted secret), instead of `clientSecret`. */
    clientSecretFile: z.optional(nonEmpty()),
    /** Longest wait for one Cloud Controller or UAA call. */
    timeout: z.prefault(duration, '30s'),
    /** Longest pause while downloading droplet bits before the download is given up. */
    downloadIdleTimeout: z.prefault(duration, '60s'),
    /** How long a name → app lookup and an app's current droplet are reused. */
    lookupCacheTtl: z.prefault(duration, '10s'),
  })
  .check(
    z.refine((value) => (value.clientSecret === undefined) !== (value.clientSecretFile === undefined), {
      message: 'set exactly one of clientSecret and clientSecretFile',
    }),
  );

/** A uid or gid of the droplet layer's files. */
const fileOwnerId = z._default(z.int().check(z.minimum(0), z.maximum(2 ** 31 - 1)), 2000);

/** Cloud Foundry apps as images: each droplet composed on pull onto the latest rootfs. */
export const dropletRepositories = z.strictObject({
  prefix,
  kind: z.literal('droplet'),
  /** A cflinuxfs tarball (.tar or .tar.gz); a replaced file becomes the new base. Optional with `berth rootfs import`. */
  rootfs: z.optional(nonEmpty()),
  /** How often the rootfs file is checked for replacement. */
  rootfsCheckInterval: z.prefault(duration, '10s'),
  /** How long images composed on a replaced rootfs stay pullable by digest. */
  previousRootfsRetention: z.prefault(duration, '24h'),
  /** The image config's architecture (the rootfs's). */
  architecture: z._default(nonEmpty(), 'amd64'),
  /** Owner of every file of the droplet layer: vcap in cflinuxfs. */
  owner: z.prefault(z.strictObject({ uid: fileOwnerId, gid: fileOwnerId }), {}),
  /** Droplets kept per app, newest first: uploaded ones, or layers cached from the Cloud Controller. */
  keepDroplets: z._default(z.int().check(z.minimum(1), z.maximum(1000)), 5),
  /** Without it, droplets are uploaded (`POST /v2/<name>/blobs/?guid=`, `berth droplet push`). */
  cloudController: z.optional(cloudController),
  /**
   * Variables every image of the prefix gets, after (and overriding) those
   * Berth sets. Readable by anyone who may pull: never credentials.
   */
  environment: z._default(z.record(z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')), z.string()), {}),
});

/**
 * A pull-through cache of another registry (docs/proxy.md): names under
 * `prefix` are fetched from `upstream` on first pull and kept as hosted
 * content; tags are re-checked after `tagTtl`, and served from the cache
 * when the upstream fails.
 */
export const proxyRepositories = z
  .strictObject({
    prefix,
    kind: z.literal('proxy'),
    /** The upstream registry's API, such as https://registry-1.docker.io or https://ghcr.io. */
    upstream: z.url({ protocol: /^https?$/, error: 'expected the upstream registry as an http(s) URL, such as https://ghcr.io' }),
    /** Single-component names are official images under `library/` (Docker Hub); default: on for Docker Hub. */
    officialImages: z.optional(z.boolean()),
    /** The `ns` query values (containerd registry namespaces) this cache serves; default: the upstream's host, docker.io for Docker Hub. */
    namespaces: z.optional(z.array(nonEmpty())),
    username: z.optional(nonEmpty()),
    password: z.optional(z.string()),
    /** A file holding the password (for secrets mounted as files). */
    passwordFile: z.optional(nonEmpty()),
    /** A docker/podman auth file to take the upstream's credentials from. */
    authFile: z.optional(nonEmpty()),
    /** How long a cached tag is served before the upstream is asked again. */
    tagTtl: z.prefault(duration, '5m'),
    /** After the upstream fails, how long cached tags are served without asking it again. */
    failureBackoff: z.prefault(duration, '30s'),
    /** How long to wait for the upstream's response headers, or for more bytes of a blob. */
    timeout: z.prefault(duration, '30s'),
    /** Whether clients may push to names under the prefix (stored as hosted content). */
    pushes: z._default(z.boolean(), false),
    /** The most the cache may hold (distinct blobs and manifests); least recently pulled images are evicted beyond it. */
    maxBytes: z.optional(byteSize),
    /** Cache each manifest's signatures, SBOMs and attestations with it (referrers API, else cosign tags). */
    referrers: z._default(z.boolean(), true),
    /** Below this fraction of the upstream's rate limit left, cached tags are served without re-checking them. */
    rateLimitReserve: z._default(z.number().check(z.minimum(0), z.maximum(1)), 0.1),
    /** Repositories and tags kept synced from the upstream on a schedule (pre-warming). */
    sync: z.optional(
      z.strictObject({
        /** How often (one replica at a time); 0 turns it off. */
        interval: z.prefault(duration, '1h'),
        repositories: z
          .array(
            z.strictObject({
              /** The repository's name upstream, as clients name it after the prefix (`library/alpine`, `org/tool`). */
              name: z.string().check(z.regex(/^[a-z0-9]+([._-][a-z0-9]+)*(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/, 'expected a repository name such as library/alpine')),
              /** Tag globs (`*` any run, `?` one character); default every tag. */
              tags: z._default(z.array(nonEmpty()).check(z.minLength(1)), ['*']),
            }),
          )
          .check(z.minLength(1)),
      }),
    ),
  })
  .check(
    z.refine((value) => value.maxBytes === undefined || !value.pushes, {
      message: 'maxBytes evicts cached images and cannot tell them from pushed ones: a cache with a budget takes no pushes (pushes: false)',
      path: ['maxBytes'],
    }),
  );

export type ProxyRepositoryConfig = z.output<typeof proxyRepositories>;

export const repositoryKinds = z.discriminatedUnion('kind', [hostedRepositories, archiveRepositories, dropletRepositories, proxyRepositories]);

export type RepositoryKindConfig = z.output<typeof repositoryKinds>;
