import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { passNiceness } from '../../src/gc/background-priority.ts';

const moduleUrl = new URL('../../src/gc/background-priority.ts', import.meta.url).href;
const niceOf = (statPath: string) => {
  const stat = readFileSync(statPath, 'utf8');
  // The 19th field; the command name before it is in parentheses and may hold spaces.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
};
const linuxOnly = { skip: process.platform !== 'linux' && 'thread priorities are read from /proc' };

describe('passes at a lower CPU priority', () => {
  it('the pass thread lowers its own priority and no other thread of the process', linuxOnly, async () => {
    const before = niceOf('/proc/thread-self/stat');
    const worker = new Worker(
      `import { parentPort } from 'node:worker_threads';
       import { readFileSync } from 'node:fs';
       const { lowerThreadPriority } = await import(${JSON.stringify(moduleUrl)});
       const lowered = lowerThreadPriority();
       const stat = readFileSync('/proc/thread-self/stat', 'utf8');
       parentPort.postMessage({ lowered, nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) });`,
      { eval: true, type: 'module' } as ConstructorParameters<typeof Worker>[1],
    );
    const [answer] = (await once(worker, 'message')) as [{ lowered: boolean; nice: number }];
    await worker.terminate();
    assert.deepEqual(answer, { lowered: true, nice: Math.max(before, passNiceness) });
    assert.equal(niceOf('/proc/thread-self/stat'), before, 'the calling thread of the test keeps its priority');
  });

  it('`berth gc` and `berth retention` lower every thread of their process', linuxOnly, async () => {
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      const { lowerProcessPriority } = await import(${JSON.stringify(moduleUrl)});
      const lowered = lowerProcessPriority();
      const nices = readdirSync('/proc/self/task').map((id) => {
        const stat = readFileSync('/proc/self/task/' + id + '/stat', 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      });
      process.stdout.write(JSON.stringify({ lowered, nices: [...new Set(nices)] }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)) });
    assert.deepEqual(JSON.parse(stdout), { lowered: true, nices: [passNiceness] });
  });
});
