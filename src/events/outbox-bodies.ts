/**
 * The body of an event queue row: one serialised CloudEvent, or several
 * events written together (pulls gathered for a moment) as a JSON array
 * with one event per line. `JSON.stringify` never writes a raw line break,
 * so the line breaks count and separate the events; the metadata stores
 * count them the same way for the backlog.
 */

/** One row's body for `events` (serialised CloudEvents, at least one), in order. */
export function groupedBody(events: readonly string[]): string {
  return events.length === 1 ? (events[0] as string) : `[${events.join(',\n')}]`;
}

/** How many events a row's body holds. */
export function eventCount(body: string): number {
  if (body.charCodeAt(0) !== 0x5b) return 1;
  let count = 1;
  for (let at = body.indexOf('\n'); at !== -1; at = body.indexOf('\n', at + 1)) count++;
  return count;
}

/** The serialised events of a row's body, in order. */
export function eventsOf(body: string): string[] {
  return body.charCodeAt(0) === 0x5b ? body.slice(1, -1).split(',\n') : [body];
}
