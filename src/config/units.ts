import * as z from './zod.ts';

const durationUnits = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const sizeUnits = { b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 } as const;

/** A duration: milliseconds as a number, or text such as `500ms`, `30s`, `10m`, `12h`, `7d`. Parsed to milliseconds. */
export const duration = z.pipe(
  z.union([z.number().check(z.int(), z.nonnegative()), z.string().check(z.regex(/^\d+(\.\d+)?(ms|s|m|h|d)?$/, 'expected a duration such as 30s, 10m, 12h or 7d'))]),
  z.transform((value) => {
    if (typeof value === 'number') return value;
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value);
    return Math.round(Number(match?.[1]) * durationUnits[(match?.[2] ?? 'ms') as keyof typeof durationUnits]);
  }),
);

/** A size: bytes as a number, or text such as `512MiB`, `10GB`. Parsed to bytes. */
export const byteSize = z.pipe(
  z.union([z.number().check(z.int(), z.nonnegative()), z.string().check(z.regex(/^\d+(\.\d+)?\s*([KMGT]i?B|B)?$/i, 'expected a size such as 4MiB, 500MB or 10GiB'))]),
  z.transform((value) => {
    if (typeof value === 'number') return value;
    const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)?$/i.exec(value);
    return Math.round(Number(match?.[1]) * sizeUnits[(match?.[2]?.toLowerCase() ?? 'b') as keyof typeof sizeUnits]);
  }),
);

/** `HOST:PORT`, with IPv6 hosts in brackets. */
export const hostPort = z.string().check(z.regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, 'expected HOST:PORT, such as 127.0.0.1:5000 or [::]:5000'));

export function splitHostPort(value: string): { host: string; port: number } {
  const index = value.lastIndexOf(':');
  return { host: value.slice(0, index).replace(/^\[(.*)\]$/, '$1'), port: Number(value.slice(index + 1)) };
}
