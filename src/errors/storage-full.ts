// A full disk (or quota) under one of the registry's stores, recognised in
// whatever error reports it: Node's fs (ENOSPC, EDQUOT), SQLite
// (SQLITE_FULL) or PostgreSQL (disk_full, 53100).

/** Which store is full: a fixed set, used as a metric label. */
export type FullStore = 'blobs' | 'metadata';

export interface StorageFull {
  store: FullStore;
  /** ENOSPC, EDQUOT, SQLITE_FULL or 53100, as the store said it. */
  code: string;
  /** What reported it: the file, or the database. */
  where: string;
  /** The store's own message. */
  reason: string;
}

/** The storage-full condition behind `error` (or one of its causes), if that is what it is. */
export function storageFullOf(error: unknown): StorageFull | undefined {
  let current = error;
  for (let depth = 0; depth < 8 && typeof current === 'object' && current !== null; depth += 1) {
    const found = recognise(current as Record<string, unknown>);
    if (found !== undefined) return found;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function recognise(error: Record<string, unknown>): StorageFull | undefined {
  const reason = typeof error['message'] === 'string' ? error['message'] : String(error);
  if (error['code'] === 'ENOSPC' || error['code'] === 'EDQUOT') {
    return { store: 'blobs', code: error['code'], where: typeof error['path'] === 'string' ? error['path'] : 'the blob store', reason };
  }
  // node:sqlite: errcode 13 is SQLITE_FULL ("database or disk is full").
  if (error['code'] === 'ERR_SQLITE_ERROR' && (error['errcode'] === 13 || error['errstr'] === 'database or disk is full')) {
    return { store: 'metadata', code: 'SQLITE_FULL', where: 'the SQLite metadata database', reason };
  }
  if (error['code'] === '53100' && typeof error['severity'] === 'string') {
    return { store: 'metadata', code: '53100', where: 'the PostgreSQL metadata database', reason };
  }
  return undefined;
}
