import type { BlobStore } from '../blobs/blob-store.ts';
import type { Logger } from '../log.ts';
import type { MetaStore } from '../meta/meta-store.ts';

export interface ExpiredUploads {
  /** Sessions untouched since the cutoff, removed with their bytes. */
  sessions: number;
  /** Upload-area entries without a session (a process died between the two, or a conversion never finished). */
  leftovers: number;
  /** Multipart uploads aborted in the blob store (S3). */
  multipart: number;
}

/**
 * Removes uploads nobody touched since `cutoff`: the session first, so a
 * client still holding the id gets BLOB_UPLOAD_UNKNOWN, then the bytes.
 */
export async function removeExpiredUploads(
  blobs: BlobStore,
  meta: MetaStore,
  cutoff: Date,
  options: { dryRun: boolean; sweepMultipart?: (cutoff: Date) => Promise<number>; logger: Logger; signal?: AbortSignal },
): Promise<ExpiredUploads> {
  const result: ExpiredUploads = { sessions: 0, leftovers: 0, multipart: 0 };
  for (const session of await meta.uploads.staleSince(cutoff)) {
    options.signal?.throwIfAborted();
    if (!options.dryRun) {
      if (!(await meta.uploads.delete(session.id))) continue;
      await blobs.uploads.remove(session.id);
    }
    result.sessions++;
  }
  for await (const item of blobs.uploads.list()) {
    options.signal?.throwIfAborted();
    if (item.modifiedAt >= cutoff || (await meta.uploads.get(item.key)) !== undefined) continue;
    if (!options.dryRun) await blobs.uploads.remove(item.key);
    result.leftovers++;
  }
  if (options.sweepMultipart !== undefined && !options.dryRun) {
    result.multipart = await options.sweepMultipart(cutoff).catch((error: unknown) => {
      options.logger.warn({ err: error }, 'could not sweep expired multipart uploads');
      return 0;
    });
  }
  return result;
}
