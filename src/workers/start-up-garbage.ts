import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type CollectGarbage = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * Lets `collectStartUpGarbage` reach V8's collector. Called once, on the
 * main thread, before any worker starts: V8's flags belong to the process,
 * and changing them while other threads run is not safe.
 */
export function exposeCollector(): void {
  setFlagsFromString('--expose-gc');
}

/**
 * A second after a serving thread has started, collects once what start-up
 * left behind, the way V8 does when memory runs short: a full collection
 * that also shrinks the young generation back to its initial size. Start-up
 * grows it to its maximum (8 MiB per semi-space, bin/berth.js) and an idle
 * registry never collects again, so without this about 10 MiB per thread
 * stays resident for nothing; under load the young generation grows back
 * (docs/decisions.md, "Start-up's garbage collected once"). Does nothing
 * unless `exposeCollector` ran first.
 */
export function collectStartUpGarbage(after = 1000): void {
  setTimeout(() => {
    const collect = runInNewContext("typeof gc === 'function' ? gc : undefined") as CollectGarbage | undefined;
    collect?.({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  }, after).unref();
}
