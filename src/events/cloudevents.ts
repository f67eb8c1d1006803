import { randomUUID } from 'node:crypto';
import type { EventType } from '../config/operations.ts';

/** The event types Berth sends, and the `types` category a webhook subscribes to for each. */
export const eventTypes = {
  'io.berth.manifest.pushed': 'push',
  'io.berth.manifest.pulled': 'pull',
  'io.berth.manifest.deleted': 'delete',
  'io.berth.tag.deleted': 'delete',
  'io.berth.blob.deleted': 'delete',
  'io.berth.gc.completed': 'gc',
} as const satisfies Record<string, EventType>;

export type BerthEventType = keyof typeof eventTypes;

/** A CloudEvents 1.0 event in structured JSON mode. */
export interface CloudEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: BerthEventType;
  /** `<repository>:<tag>` or `<repository>@<digest>`; absent for registry-wide events. */
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  data: Record<string, unknown>;
}

export function cloudEvent(source: string, type: BerthEventType, subject: string | undefined, data: Record<string, unknown>, time = new Date()): CloudEvent {
  return {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type,
    ...(subject === undefined ? {} : { subject }),
    time: time.toISOString(),
    datacontenttype: 'application/json',
    data,
  };
}

let lastTime = 0;
let lastIso = new Date(0).toISOString();

/**
 * `JSON.stringify(cloudEvent(...))`, written directly: pull events are
 * built thousands of times a second, and this skips the event object and
 * formats the time once per millisecond.
 */
export function cloudEventJson(source: string, type: BerthEventType, subject: string | undefined, data: Record<string, string | number>, time = Date.now()): string {
  if (time !== lastTime) {
    lastTime = time;
    lastIso = new Date(time).toISOString();
  }
  const about = subject === undefined ? '' : `"subject":${JSON.stringify(subject)},`;
  return `{"specversion":"1.0","id":"${randomUUID()}","source":${JSON.stringify(source)},"type":"${type}",${about}"time":"${lastIso}","datacontenttype":"application/json","data":${JSON.stringify(data)}}`;
}
