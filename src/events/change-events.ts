import type { OutboxRow } from '../meta/meta-store.ts';
import type { Change, ChangeLog } from '../meta/change-log.ts';
import { cloudEvent, type CloudEvent } from './cloudevents.ts';
import type { EventRecorder } from './recorder.ts';

/** The CloudEvents of changes, as queue rows the write commits with the change (see ChangeLog). */
export class ChangeEvents implements ChangeLog {
  readonly #recorder: EventRecorder;

  constructor(recorder: EventRecorder) {
    this.#recorder = recorder;
  }

  async rows(change: Change): Promise<readonly OutboxRow[]> {
    const rows = this.#recorder.rows(this.#event(change), change.repository);
    // Pulls gathered before this change go into the queue before it.
    if (rows.length > 0) await this.#recorder.flush();
    return rows;
  }

  committed(rows: readonly OutboxRow[]): void {
    this.#recorder.committed(rows);
  }

  #event(change: Change): CloudEvent {
    const source = this.#recorder.source;
    const { repository } = change;
    switch (change.kind) {
      case 'manifest-pushed': {
        const { digest, mediaType, size, tags } = change;
        const subject = tags[0] === undefined ? `${repository}@${digest}` : `${repository}:${tags[0]}`;
        return cloudEvent(source, 'io.berth.manifest.pushed', subject, { repository, digest, mediaType, size, tags: [...tags] });
      }
      case 'manifest-deleted':
        return cloudEvent(source, 'io.berth.manifest.deleted', `${repository}@${change.digest}`, { repository, digest: change.digest, reason: change.reason });
      case 'tag-deleted': {
        const { tag, digest, reason } = change;
        return cloudEvent(source, 'io.berth.tag.deleted', `${repository}:${tag}`, { repository, tag, ...(digest === undefined ? {} : { digest }), reason });
      }
      case 'blob-deleted':
        return cloudEvent(source, 'io.berth.blob.deleted', `${repository}@${change.digest}`, { repository, digest: change.digest, reason: change.reason });
    }
  }
}
