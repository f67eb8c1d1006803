import { cpus, totalmem, release } from 'node:os';

/** One measured figure, side by side. `better` says which direction wins. */
export interface Row {
  section: string;
  metric: string;
  unit: string;
  berth: number;
  distribution?: number;
  /** A machine reference (nginx, OpenSSL) where one applies. */
  reference?: number;
  referenceName?: string;
  better: 'higher' | 'lower';
  /** The target, in words, and whether it was met. */
  target?: string;
  met?: boolean;
}

export function machine(extra: Record<string, string>): Record<string, string> {
  const cpu = cpus();
  return {
    cpu: `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`,
    memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
    kernel: release(),
    node: process.version,
    ...extra,
  };
}

/** How many times better Berth is than the other figure (above 1 is better, whichever the direction). */
export function advantage(row: Row, other: number | undefined): number | undefined {
  if (other === undefined || other === 0 || row.berth === 0) return undefined;
  return row.better === 'higher' ? row.berth / other : other / row.berth;
}

function format(value: number | undefined, unit: string): string {
  if (value === undefined || Number.isNaN(value)) return '–';
  if (unit === 'B/s') return `${(value / 1e6).toFixed(0)} MB/s`;
  if (unit === 'B') return `${(value / 2 ** 20).toFixed(0)} MiB`;
  if (unit === 'ms') return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
  if (unit === 'req/s') return `${value.toFixed(0)}/s`;
  return `${value.toFixed(2)} ${unit}`;
}

export function markdown(rows: Row[], info: Record<string, string>): string {
  const lines = ['| | metric | Berth | Distribution | × Distribution | reference | % of reference | target | met |', '|---|---|---|---|---|---|---|---|---|'];
  for (const row of rows) {
    const versus = advantage(row, row.distribution);
    const reference = row.reference === undefined ? undefined : row.better === 'higher' ? row.berth / row.reference : row.reference / row.berth;
    lines.push(
      `| ${row.section} | ${row.metric} | ${format(row.berth, row.unit)} | ${format(row.distribution, row.unit)} | ${versus === undefined ? '–' : `${versus.toFixed(2)}×`} | ${
        row.reference === undefined ? '–' : `${row.referenceName}: ${format(row.reference, row.unit)}`
      } | ${reference === undefined ? '–' : `${(reference * 100).toFixed(0)} %`} | ${row.target ?? ''} | ${row.met === undefined ? '' : row.met ? 'yes' : '**no**'} |`,
    );
  }
  const machineLines = Object.entries(info).map(([key, value]) => `- ${key}: ${value}`);
  return `${machineLines.join('\n')}\n\n${lines.join('\n')}\n`;
}
