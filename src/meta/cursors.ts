/**
 * Cursors of the collection scans, shared by both SQL drivers: a scan over
 * (repository_id, digest) continues after the last row it returned.
 */

/** The (repository id, digest) a cursor names; before every row when absent. */
export function parseRowCursor(cursor: string | undefined): [number, string] {
  if (cursor === undefined) return [-1, ''];
  const [id, digest] = JSON.parse(cursor) as [number, string];
  return [id, digest];
}

/** The cursor after the last of `rows` (which carry repository_id and digest), or none when the scan is done. */
export function nextRowCursor(rows: readonly Record<string, unknown>[], limit: number): { cursor?: string } {
  const last = rows[rows.length - 1];
  return rows.length < limit || last === undefined ? {} : { cursor: JSON.stringify([Number(last['repository_id']), last['digest']]) };
}
