import { RegistryError } from '../errors/registry-error.ts';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** `os/arch[/variant]`, as `--platform` takes it. */
export function parsePlatform(text: string): Platform {
  const [os, architecture, variant, ...rest] = text.split('/');
  if (os === undefined || os === '' || architecture === undefined || architecture === '' || rest.length > 0 || variant === '') {
    throw new RegistryError('UNSUPPORTED', `"${text}" is not a platform; use OS/ARCH[/VARIANT], such as linux/arm64`);
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** The platform images run on here: always linux (containers are), the CPU in Go's naming. */
export function hostPlatform(arch: string = process.arch, armVersion: unknown = (process.config.variables as Record<string, unknown>)['arm_version']): Platform {
  const architecture =
    ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64' } as Record<string, string>)[arch] ?? arch;
  if (architecture === 'arm') return { os: 'linux', architecture, variant: `v${typeof armVersion === 'string' || typeof armVersion === 'number' ? armVersion : '7'}` };
  return { os: 'linux', architecture };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part !== undefined).join('/');
}

/**
 * The index entry for `wanted`: same OS and architecture; a variant asked
 * for must match, otherwise an entry without one (or arm64's v8) is preferred.
 */
export function choosePlatform<T extends { platform?: Partial<Platform> }>(entries: readonly T[], wanted: Platform): T | undefined {
  const candidates = entries.filter((entry) => entry.platform?.os === wanted.os && entry.platform.architecture === wanted.architecture);
  if (wanted.variant !== undefined) return candidates.find((entry) => entry.platform?.variant === wanted.variant);
  return candidates.find((entry) => entry.platform?.variant === undefined || entry.platform.variant === 'v8') ?? candidates[0];
}
