import { readdirSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * The nice value passes (garbage collection, retention) run at: on a busy
 * machine the kernel gives the registry's threads about nine tenths of a
 * core a pass competes for, on an idle one the pass runs as fast as its
 * duty allows. Not 19: a pass holding the database's writer lock must still
 * get the CPU to finish its short transaction.
 */
export const passNiceness = 10;

/**
 * Lowers the CPU priority of the calling thread only (on Linux each thread
 * has its own nice value): the pass thread inside a server. False where
 * the platform does not allow it; the pass then runs at the registry's
 * priority, paced by its duty alone.
 */
export function lowerThreadPriority(niceness = passNiceness): boolean {
  try {
    const threadId = Number(readlinkSync('/proc/thread-self').split('/').pop());
    setPriority(threadId, niceness);
    return true;
  } catch {
    return false;
  }
}

/** Lowers the CPU priority of every thread of this process (`berth gc`, `berth retention`); threads started later inherit it. */
export function lowerProcessPriority(niceness = passNiceness): boolean {
  try {
    for (const threadId of readdirSync('/proc/self/task')) setPriority(Number(threadId), niceness);
    return true;
  } catch {
    try {
      setPriority(niceness);
      return true;
    } catch {
      return false;
    }
  }
}
