// Where a server's time goes, by stage of the request path, from a V8 CPU
// profile (`node --cpu-prof`; `node bench/hotpath.ts --profile DIR` writes
// one of Berth under load):
//
//   node bench/profile-stages.ts FILE.cpuprofile [--skip SECONDS]
//
// Each sample is given to the first stage its stack names, read from the
// innermost frame outwards: the kernel's socket calls and the garbage
// collector first, then the frames of Berth's parts and their libraries
// (SQL statements count for their caller: the metadata store or the queue).
// Samples of quiet moments (start-up, runs against other servers) are left
// out: only 200 ms stretches at least 85 % busy count.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The native calls that write to and read from a socket (a HEAD's headers go out as one Latin-1 string). */
const socketCalls = ['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString', 'writeString', 'onStreamRead'];

/** Stages in the order a frame is tested against them; the first match names the frame. */
const stages: [string, (frame: ProfileNode['callFrame']) => boolean][] = [
  ['socket writes and reads (kernel)', (f) => socketCalls.includes(f.functionName) && f.url === ''],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  ['events (pull events queued and delivered)', (f) => /src\/events\/|pull-records|sqlite-operations-store|outbox/.test(f.url) || /undici/.test(f.url)],
  ['access control', (f) => /src\/auth\/|node_modules\/jose\//.test(f.url)],
  ['access log', (f) => /access-log|node_modules\/(pino|sonic-boom)\//.test(f.url)],
  ['metrics', (f) => /src\/http\/observer|src\/ops\/observers|node_modules\/prom-client\//.test(f.url)],
  ['metadata lookup (SQLite and its cache)', (f) => /src\/meta\//.test(f.url)],
  ['Berth handler (routing, parsing, headers)', (f) => /src\/(http|registry|oci)\//.test(f.url)],
  ['Fastify (routing, hooks, reply)', (f) => /node_modules\/(fastify|find-my-way|fast-querystring|@fastify)\//.test(f.url)],
  ['Node HTTP (parser, headers, streams)', (f) => /^node:(_http|internal\/streams|net|internal\/stream_base|events)/.test(f.url) || f.functionName === 'parserOnHeadersComplete'],
];
const other = 'other (timers, microtask queue, start-up leftovers)';

export function stageShares(profile: Profile, skipSeconds = 0): { stage: string; share: number }[] {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const idle = new Set(profile.nodes.filter((node) => node.callFrame.functionName === '(idle)').map((node) => node.id));
  const stageOf = new Map<number, string>();
  const classify = (id: number): string => {
    const known = stageOf.get(id);
    if (known !== undefined) return known;
    let found = other;
    for (let current: number | undefined = id; current !== undefined; current = parent.get(current)) {
      const frame = (byId.get(current) as ProfileNode).callFrame;
      // The shared statement layer counts for whoever called it (the metadata store or the event queue).
      if (frame.url.endsWith('src/meta/sqlite/database.ts')) continue;
      // A string written to a file (the log's stream) is no socket call: its caller names it.
      const caller = parent.get(current);
      if (socketCalls.includes(frame.functionName) && caller !== undefined && byId.get(caller)?.callFrame.url === 'node:fs') continue;
      const match = stages.find(([, test]) => test(frame));
      if (match !== undefined) {
        found = match[0];
        break;
      }
    }
    stageOf.set(id, found);
    return found;
  };
  // Busy stretches only.
  const bucket = 200_000;
  const busy = new Map<number, number>();
  const all = new Map<number, number>();
  let time = 0;
  const buckets = profile.samples.map((sample, index) => {
    time += profile.timeDeltas[index] ?? 0;
    const at = Math.floor(time / bucket);
    all.set(at, (all.get(at) ?? 0) + (profile.timeDeltas[index] ?? 0));
    if (!idle.has(sample)) busy.set(at, (busy.get(at) ?? 0) + (profile.timeDeltas[index] ?? 0));
    return at;
  });
  const totals = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((sample, index) => {
    const at = buckets[index] as number;
    if (at * 0.2 < skipSeconds || (busy.get(at) ?? 0) < 0.85 * (all.get(at) ?? 1) || idle.has(sample)) return;
    const delta = profile.timeDeltas[index] ?? 0;
    const stage = classify(sample);
    totals.set(stage, (totals.get(stage) ?? 0) + delta);
    total += delta;
  });
  return [...totals].map(([stage, spent]) => ({ stage, share: spent / total })).sort((a, b) => b.share - a.share);
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { skip: { type: 'string', default: '0' } } });
  const profile = JSON.parse(readFileSync(positionals[0] as string, 'utf8')) as Profile;
  for (const { stage, share } of stageShares(profile, Number(values.skip))) process.stdout.write(`| ${stage} | ${(share * 100).toFixed(1)} % |\n`);
}
