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
